import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { type Config, ConfigSchema, createRedis, inheritedEnv, loadConfig } from '@portico/core'
import { createDb, databaseName, databaseUrlFor, migrateToLatest } from '@portico/db'
import { createDatabase, dropDatabase } from './databases.js'

/** The subset of tap's Test used here, so helpers work with any tap test object. */
export interface Teardown {
  teardown(fn: () => unknown): void
}

const RUN_DB_PREFIX = 'portico_test_'
const CONFIG_KEYS = Object.keys(ConfigSchema.properties)

/**
 * A configuration for one test file: its own database (a copy of the run's migrated database
 * made by `npm test`, or a freshly migrated one when the file runs alone), its own queue prefix
 * and clone root, quiet logs. Everything is removed at teardown.
 */
export async function testConfig(t: Teardown, env: Record<string, string | undefined> = {}): Promise<Config> {
  const base = loadConfig({ ...inheritedEnv(CONFIG_KEYS), NODE_ENV: 'test' })
  const suffix = randomBytes(4).toString('hex')
  const runDb = databaseName(base.DATABASE_URL)
  const isRunDb = runDb.startsWith(RUN_DB_PREFIX)
  const dbName = `${isRunDb ? runDb : `${RUN_DB_PREFIX}adhoc`}_${suffix}`.slice(0, 63)
  await createDatabase(base.DATABASE_URL, dbName, isRunDb ? runDb : undefined)
  const url = databaseUrlFor(base.DATABASE_URL, dbName)
  if (!isRunDb) {
    const db = createDb({ DATABASE_URL: url })
    try {
      await migrateToLatest(db)
    } finally {
      await db.destroy()
    }
  }
  const cloneRoot = await mkdtemp(path.join(tmpdir(), 'portico-clones-'))
  const runPrefix = base.REDIS_PREFIX.startsWith('{portico-test-')
    ? base.REDIS_PREFIX.slice(1, -1)
    : 'portico-test'
  const queuePrefix = `{${runPrefix}-${suffix}}`
  t.teardown(async () => {
    await dropDatabase(base.DATABASE_URL, dbName)
    await rm(cloneRoot, { recursive: true, force: true })
    await deleteKeys(base.REDIS_URL, queuePrefix)
  })
  return loadConfig({
    ...inheritedEnv(CONFIG_KEYS),
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: url,
    DATABASE_POOL_MAX: '4',
    REDIS_PREFIX: queuePrefix,
    CLONE_ROOT: cloneRoot,
    SHUTDOWN_TIMEOUT_MS: '5000',
    // Tests hammer routes on purpose; the rate-limit tests set their own small limits.
    RATE_LIMIT_AUTH_MAX: '100000',
    RATE_LIMIT_CONNECTIONS_MAX: '100000',
    RATE_LIMIT_DEPLOYS_MAX: '100000',
    // Every read revalidates with GitHub, so tests see each caller's access at once; the window
    // itself has its own test (apps/api/test/pods.test.ts).
    PODS_REVALIDATE_SECONDS: '0',
    // Tests that write rows or Redis keys directly read them back at once; the read cache's own
    // tests turn it on (apps/api/test/read-cache.test.ts, session-cache.test.ts).
    API_READ_CACHE_MS: '0',
    ...env,
  })
}

/** Deletes every Redis key starting with `prefix`. */
export async function deleteKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = createRedis(redisUrl, 'worker')
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(
        cursor,
        'MATCH',
        `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`,
        'COUNT',
        500,
      )
      cursor = next
      if (keys.length > 0) await redis.del(...keys)
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
}
