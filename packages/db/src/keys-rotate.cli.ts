import { ConfigError, createRedis, loadConfig, waitForRedis } from '@portico/core'
import { createDb } from './db.js'
import { rotateStoredTokens } from './key-rotation.js'

// `npm run keys:rotate`: re-encrypts every stored token (connections, deployments, sessions)
// with the active key of TOKEN_ENCRYPTION_KEYS, then prints how many envelopes use each key id.
async function main(): Promise<void> {
  const config = loadConfig()
  const db = createDb(config)
  const redis = createRedis(config.REDIS_URL, 'producer')
  redis.on('error', () => {})
  try {
    await waitForRedis(redis, 10_000)
    const report = await rotateStoredTokens({
      db,
      redis,
      queuePrefix: config.REDIS_PREFIX,
      keyring: config.keyring,
    })
    for (const store of ['github_connections', 'deployments', 'sessions'] as const) {
      const r = report[store]
      console.log(
        `${store}: rotated ${r.rotated}, undecryptable ${r.failed}, changed meanwhile ${r.raced}; by key id ${JSON.stringify(r.byKeyId)}`,
      )
    }
    console.log(
      `active key: ${config.keyring.activeKeyId}; envelopes by key id: ${JSON.stringify(report.byKeyId)}`,
    )
    const stale = Object.keys(report.byKeyId).filter((id) => id !== config.keyring.activeKeyId)
    if (stale.length > 0) {
      console.log(`still in use besides the active key: ${stale.join(', ')} (run again, or investigate)`)
      process.exitCode = 2
    } else {
      console.log('every stored token uses the active key: older keys can be retired.')
    }
  } finally {
    await redis.quit().catch(() => redis.disconnect())
    await db.destroy()
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? err.message : `Key rotation failed: ${(err as Error).message}`)
  process.exitCode = 1
})
