import { ConfigError, loadConfig } from '@portico/core'
import { ensureDatabase } from './admin.js'
import { createDb } from './db.js'
import { migrateDown, migrateToLatest, migrationStatus } from './migrator.js'

// `npm run migrate -- [latest|down|status]`
const command = process.argv[2] ?? 'latest'

async function main(): Promise<void> {
  const config = loadConfig()
  if (!['latest', 'down', 'status'].includes(command)) {
    throw new Error(`Unknown command "${command}": use latest, down or status.`)
  }
  if (
    command === 'latest' &&
    config.NODE_ENV !== 'production' &&
    (await ensureDatabase(config.DATABASE_URL))
  ) {
    console.log('Created the database.')
  }
  const db = createDb(config)
  try {
    if (command === 'status') {
      for (const m of await migrationStatus(db)) {
        console.log(`${m.executedAt ? m.executedAt.toISOString() : 'pending'.padEnd(24)}  ${m.name}`)
      }
      return
    }
    const run = command === 'down' ? migrateDown : migrateToLatest
    const { results } = await run(db)
    if (!results?.length) console.log('Nothing to do.')
    for (const r of results ?? [])
      console.log(`${r.direction === 'Up' ? 'applied' : 'reverted'} ${r.migrationName}`)
  } finally {
    await db.destroy()
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : `Migration failed: ${(err as Error).message}`)
  process.exitCode = 1
})
