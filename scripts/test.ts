/**
 * `npm test`: gives this run its own database (created, migrated, dropped afterwards) and its
 * own queue prefix, then runs every workspace's tap tests. Works with or without any
 * environment set: defaults point at the local Postgres and Redis.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { loadConfig } from '@portico/core'
import { createDb, databaseUrlFor, migrateToLatest } from '@portico/db'
import { createDatabase, deleteKeys, dropDatabase } from '@portico/testing'

const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`
const base = loadConfig({ ...process.env, NODE_ENV: 'test' })
const dbName = `portico_test_${runId}`
const queuePrefix = `{portico-test-${runId}}`

await createDatabase(base.DATABASE_URL, dbName)
const url = databaseUrlFor(base.DATABASE_URL, dbName)
const db = createDb({ DATABASE_URL: url })
try {
  await migrateToLatest(db)
} finally {
  await db.destroy()
}

const args = process.argv.slice(2)
const flags = args.filter((a) => a.startsWith('-'))
const named = args.filter((a) => !a.startsWith('-'))
const files = [
  ...flags,
  ...(named.length > 0 ? named : ['packages/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts']),
]
const code = await new Promise<number>((resolve) => {
  const child = spawn('npx', ['tap', ...files], {
    stdio: 'inherit',
    env: { ...process.env, NODE_ENV: 'test', DATABASE_URL: url, REDIS_PREFIX: queuePrefix },
  })
  child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)))
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, () => child.kill(s))
})

await dropDatabase(base.DATABASE_URL, dbName)
await deleteKeys(base.REDIS_URL, `{portico-test-${runId}`)
process.exitCode = code
