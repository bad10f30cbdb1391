import type { Redis } from 'ioredis'
import { type Keyring, needsRotation, rotate } from './crypto.js'

/**
 * Redis key prefix of the API's sessions (`{REDIS_PREFIX}:sess:`): a session lives at
 * `{prefix}{sid}` as JSON, a logged-out one leaves a tombstone at `{prefix}ended:{sid}`.
 */
export function sessionKeyPrefix(queuePrefix: string): string {
  return `${queuePrefix}:sess:`
}

/** Tombstones of ended sessions share the session prefix; they hold no token. */
const TOMBSTONE = 'ended:'

/**
 * Compare-and-set: replaces the session only if it still holds exactly what was read, keeping
 * its remaining lifetime (PTTL), so a concurrent save by the API is never overwritten.
 */
const REPLACE_IF_UNCHANGED = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl) else redis.call('SET', KEYS[1], ARGV[2]) end
return 1`

/** Outcome of re-encrypting one store of envelopes. */
export interface RotationReport {
  /** Envelopes re-encrypted with the active key by this run. */
  rotated: number
  /** Envelopes that could not be decrypted with the ring (unknown key, tampered): left as they are. */
  failed: number
  /** Envelopes left as they are because the value changed under this run (it will be seen next run). */
  raced: number
  /** After the run: how many envelopes use each key id (`unreadable` for malformed ones). */
  byKeyId: Record<string, number>
}

/** The key id an envelope names (`v1.<keyId>.…`), or `unreadable` when it is not an envelope. */
export function envelopeKeyId(envelope: string): string {
  const parts = envelope.split('.')
  return parts.length === 5 && parts[0] === 'v1' && parts[1] ? parts[1] : 'unreadable'
}

/** Escapes Redis glob characters so a prefix matches only itself in SCAN MATCH. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

/**
 * Re-encrypts the `githubToken` (and `githubRefreshToken`) envelopes of every session under `prefix` with the keyring's
 * active key, in place (compare-and-set, TTL kept). SCAN-based, `batchSize` keys per step;
 * sessions already on the active key are only counted, so a run can be repeated or resumed.
 */
export async function rotateSessionTokens(
  redis: Redis,
  prefix: string,
  keyring: Keyring,
  opts: { batchSize?: number } = {},
): Promise<RotationReport> {
  const report: RotationReport = { rotated: 0, failed: 0, raced: 0, byKeyId: {} }
  const count = (id: string) => {
    report.byKeyId[id] = (report.byKeyId[id] ?? 0) + 1
  }
  const match = `${globEscape(prefix)}*`
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', opts.batchSize ?? 500)
    cursor = next
    const sessions = keys.filter((k) => !k.slice(prefix.length).startsWith(TOMBSTONE))
    const values = sessions.length > 0 ? await redis.mget(sessions) : []
    for (const [i, key] of sessions.entries()) {
      const raw = values[i]
      if (raw == null) continue
      let sess: { githubToken?: unknown; githubRefreshToken?: unknown }
      try {
        sess = JSON.parse(raw) as { githubToken?: unknown; githubRefreshToken?: unknown }
      } catch {
        continue
      }
      const envelope = sess.githubToken
      if (typeof envelope !== 'string') continue
      // Sessions signed in through a GitHub App's client also hold an encrypted refresh token.
      const refresh = typeof sess.githubRefreshToken === 'string' ? sess.githubRefreshToken : undefined
      let fresh: string
      let freshRefresh: string | undefined
      try {
        const tokenStale = needsRotation(keyring, envelope)
        const refreshStale = refresh !== undefined && needsRotation(keyring, refresh)
        if (!tokenStale && !refreshStale) {
          count(keyring.activeKeyId)
          continue
        }
        fresh = tokenStale ? rotate(keyring, envelope) : envelope
        freshRefresh = refresh !== undefined && refreshStale ? rotate(keyring, refresh) : refresh
      } catch {
        report.failed += 1
        count(envelopeKeyId(envelope))
        continue
      }
      const replaced = await redis.eval(
        REPLACE_IF_UNCHANGED,
        1,
        key,
        raw,
        JSON.stringify({
          ...sess,
          githubToken: fresh,
          ...(freshRefresh === undefined ? {} : { githubRefreshToken: freshRefresh }),
        }),
      )
      if (replaced === 1) {
        report.rotated += 1
        count(keyring.activeKeyId)
      } else {
        report.raced += 1
        count(envelopeKeyId(envelope))
      }
    }
  } while (cursor !== '0')
  return report
}

/** How long the tombstone of an ended session is kept: the sessions' own 30-day lifetime. */
const TOMBSTONE_TTL_S = 30 * 24 * 3600

/**
 * Ends every session under `prefix` signed in as GitHub user `githubId` (`user.github_id`), the
 * way logout does: a tombstone at `{prefix}ended:{sid}` (so a request in flight cannot save the
 * session back) and the session removed. SCAN-based, `batchSize` keys per step. Used when GitHub
 * reports that the user revoked Portico's authorization (`github_app_authorization` revoked).
 * Returns how many sessions were ended; running it again ends none.
 */
export async function endSessionsOfGithubUser(
  redis: Redis,
  prefix: string,
  githubId: number,
  opts: { batchSize?: number } = {},
): Promise<number> {
  let ended = 0
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(
      cursor,
      'MATCH',
      `${globEscape(prefix)}*`,
      'COUNT',
      opts.batchSize ?? 500,
    )
    cursor = next
    const sessions = keys.filter((k) => !k.slice(prefix.length).startsWith(TOMBSTONE))
    const values = sessions.length > 0 ? await redis.mget(sessions) : []
    for (const [i, key] of sessions.entries()) {
      const raw = values[i]
      if (raw == null) continue
      let sess: { user?: { github_id?: unknown } }
      try {
        sess = JSON.parse(raw) as { user?: { github_id?: unknown } }
      } catch {
        continue
      }
      if (sess.user?.github_id !== githubId) continue
      const sid = key.slice(prefix.length)
      await redis.multi().set(`${prefix}${TOMBSTONE}${sid}`, '1', 'EX', TOMBSTONE_TTL_S).del(key).exec()
      ended += 1
    }
  } while (cursor !== '0')
  return ended
}
