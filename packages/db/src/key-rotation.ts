import {
  type Keyring,
  type RotationReport,
  rotate,
  rotateSessionTokens,
  sessionKeyPrefix,
} from '@portico/core'
import { sql } from 'kysely'
import type { Db } from './db.js'

/** Tables holding token envelopes in an `encrypted_token` column (NULL once wiped). */
export const TOKEN_TABLES = ['github_connections', 'deployments'] as const
export type TokenTable = (typeof TOKEN_TABLES)[number]

/** Rows read per batch, by id order (keyset pagination). */
export const ROTATION_BATCH_SIZE = 500

/**
 * Re-encrypts every `encrypted_token` of `table` with the keyring's active key, `batchSize` rows
 * at a time in id order (keyset pagination, so it neither skips nor revisits rows while others
 * are written). Rows already on the active key are not touched, so an interrupted run is resumed
 * by running again. Each update is a compare-and-set on the envelope read, so a token wiped or
 * replaced meanwhile is never brought back.
 */
export async function rotateTableTokens(
  db: Db,
  table: TokenTable,
  keyring: Keyring,
  opts: { batchSize?: number } = {},
): Promise<RotationReport> {
  const report: RotationReport = { rotated: 0, failed: 0, raced: 0, byKeyId: {} }
  const activePrefix = `v1.${keyring.activeKeyId}.`
  let after: string | undefined
  for (;;) {
    let q = db
      .selectFrom(table)
      .select(['id', 'encrypted_token'])
      .where('encrypted_token', 'is not', null)
      // Already on the active key: skipped in SQL (starts_with has no LIKE wildcards to escape).
      .where(sql<boolean>`not starts_with(encrypted_token, ${activePrefix})`)
      .orderBy('id')
      .limit(opts.batchSize ?? ROTATION_BATCH_SIZE)
    if (after !== undefined) q = q.where('id', '>', after)
    const rows = await q.execute()
    if (rows.length === 0) break
    after = rows.at(-1)!.id
    for (const row of rows) {
      const envelope = row.encrypted_token!
      let fresh: string
      try {
        fresh = rotate(keyring, envelope)
      } catch {
        report.failed += 1
        continue
      }
      const updated = await db
        .updateTable(table)
        .set({ encrypted_token: fresh })
        .where('id', '=', row.id)
        .where('encrypted_token', '=', envelope)
        .executeTakeFirst()
      if (updated.numUpdatedRows > 0n) report.rotated += 1
      else report.raced += 1
    }
  }
  report.byKeyId = await countEnvelopesByKeyId(db, table)
  return report
}

/** How many stored envelopes of `table` use each key id (`unreadable` for malformed ones). */
export async function countEnvelopesByKeyId(db: Db, table: TokenTable): Promise<Record<string, number>> {
  const keyId = sql<string>`case when split_part(encrypted_token, '.', 1) = 'v1' and split_part(encrypted_token, '.', 2) <> '' then split_part(encrypted_token, '.', 2) else 'unreadable' end`
  const rows = await db
    .selectFrom(table)
    .select([keyId.as('key_id'), (eb) => eb.fn.countAll<string>().as('n')])
    .where('encrypted_token', 'is not', null)
    .groupBy(keyId)
    .execute()
  return Object.fromEntries(rows.map((row) => [row.key_id, Number(row.n)]))
}

/** Outcome of {@link rotateStoredTokens}, per store. */
export interface KeyRotationReport {
  github_connections: RotationReport
  deployments: RotationReport
  sessions: RotationReport
  /** Over all stores: how many envelopes still use each key id after the run. */
  byKeyId: Record<string, number>
}

/**
 * Re-encrypts every stored token with the active key: connections' and deployments'
 * `encrypted_token` in Postgres and the `githubToken` of every session in Redis (under
 * `{queuePrefix}:sess:`). Shared by `npm run keys:rotate` and the worker's `rotate-keys`
 * maintenance task; idempotent and resumable. An old key may be retired once `byKeyId` names
 * only the active key.
 */
export async function rotateStoredTokens(deps: {
  db: Db
  /** The ioredis client the sessions live on. */
  redis: Parameters<typeof rotateSessionTokens>[0]
  queuePrefix: string
  keyring: Keyring
  batchSize?: number
}): Promise<KeyRotationReport> {
  const opts = { batchSize: deps.batchSize ?? ROTATION_BATCH_SIZE }
  const github_connections = await rotateTableTokens(deps.db, 'github_connections', deps.keyring, opts)
  const deployments = await rotateTableTokens(deps.db, 'deployments', deps.keyring, opts)
  const sessions = await rotateSessionTokens(
    deps.redis,
    sessionKeyPrefix(deps.queuePrefix),
    deps.keyring,
    opts,
  )
  const byKeyId: Record<string, number> = {}
  for (const part of [github_connections, deployments, sessions]) {
    for (const [id, n] of Object.entries(part.byKeyId)) byKeyId[id] = (byKeyId[id] ?? 0) + n
  }
  return { github_connections, deployments, sessions, byKeyId }
}
