import { Signer } from '@fastify/cookie'
import session from '@fastify/session'
import { AppError, isUuid, observeCache, sessionKeyPrefix } from '@portico/core'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { LRUCache } from 'lru-cache'
import { MAX_PENDING_SIGN_INS } from './oauth2.js'
import { createSessionCache, type SessionCache } from './session-cache.js'

/** What a signed-in user's session holds. The GitHub token is encrypted with the keyring. */
export interface SessionUser {
  id: string
  login: string
  name: string | null
  avatar_url: string | null
  /** GitHub's numeric user id (operators are listed by it); absent in older sessions. */
  github_id?: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Ends a session by id for every API process: a tombstone (so no request in flight can save
     * it back) and the key deleted. Rejects (503 SESSION_STORE_UNAVAILABLE) when Redis fails.
     */
    endSession(sessionId: string): Promise<void>
    /** The in-process session cache; null with `API_READ_CACHE_MS=0`. */
    sessionCache: SessionCache | null
  }
  interface Session {
    user?: SessionUser
    /** The user's OAuth token, encrypted with `encrypt(config.keyring, …)`. */
    githubToken?: string
    /**
     * Expiring user tokens (a GitHub App as the OAuth client): the refresh token, encrypted like
     * {@link githubToken}, and when the access token expires (epoch ms).
     */
    githubRefreshToken?: string
    githubTokenExpiresAt?: number
  }
}

/** Name of the session cookie over http (development). */
export const SESSION_COOKIE = 'portico_session'

/**
 * The session cookie's name: with an https `PUBLIC_URL` it takes the `__Host-` prefix, which
 * browsers only accept with Secure, Path=/ and no Domain, so no sibling subdomain can set or
 * shadow it.
 */
export function sessionCookieName(publicUrl: string): string {
  return publicUrl.startsWith('https:') ? `__Host-${SESSION_COOKIE}` : SESSION_COOKIE
}

/** Attributes the session cookie is set (and cleared) with. */
export function sessionCookieOptions(publicUrl: string) {
  return {
    path: '/',
    httpOnly: true,
    sameSite: 'lax' as const,
    secure: publicUrl.startsWith('https:'),
  }
}
const THIRTY_DAYS_MS = 30 * 24 * 60 * 60 * 1000
/**
 * Rolling without a Redis write per request: an unmodified signed-in session is re-saved (and its
 * cookie renewed) only when its stored expiry is older than this, i.e. at most once an hour per
 * session. The lifetime stays "30 days after the last activity", give or take an hour.
 */
export const SESSION_TOUCH_INTERVAL_MS = 60 * 60 * 1000
/** Redis lifetime of a session that holds only OAuth state (no user yet): 10 minutes. */
const STATE_ONLY_TTL_S = 10 * 60

const SAVE_UNLESS_ENDED = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1`

/**
 * The session cookie's signer (@fastify/cookie's HMAC-SHA256 `Signer`) remembering what it has
 * signed and verified: a value's signature under one secret never changes, and @fastify/session
 * signs the id again and verifies the cookie on every request (two HMACs, several percent of a
 * cached read's time). Only valid cookies are remembered (at most 10,000 of each), so forged ones
 * cost their HMAC every time and cannot push real ones out.
 */
export function rememberingSigner(secret: string): Pick<Signer, 'sign' | 'unsign'> {
  const signer = new Signer(secret)
  const verified = new LRUCache<string, ReturnType<Signer['unsign']>>({ max: 10_000 })
  const signed = new LRUCache<string, string>({ max: 10_000 })
  return {
    sign(value) {
      let signature = signed.get(value)
      if (signature === undefined) {
        signature = signer.sign(value)
        signed.set(value, signature)
      }
      return signature
    },
    unsign(input) {
      const known = verified.get(input)
      if (known) return known
      const result = signer.unsign(input)
      if (result.valid) verified.set(input, Object.freeze(result))
      return result
    },
  }
}

/** `value` and everything reachable from it, frozen; returns `value`. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const inner of Object.values(value)) deepFreeze(inner)
  }
  return value
}

/** Bounds of {@link sessionParser}'s memo: entries, total and per-entry JSON size (characters). */
export const PARSED_SESSIONS = { max: 10_000, maxSize: 4 * 2 ** 20, maxEntrySize: 16 * 1024 }

/**
 * Session JSON → the parsed session, or undefined when it is not JSON or not a session this API
 * wrote ({@link isStoredSession}). Valid signed-in sessions are remembered by their stored text:
 * their reads load the same JSON again and again, and parsing and checking it on every request
 * was several percent of a cached read. Only sessions with a user are kept (anonymous visitors
 * can make as many state-only sessions as they like), within {@link PARSED_SESSIONS} (about 4 Mi
 * characters of JSON plus their parsed copies). Values are deep-frozen because they are shared:
 * @fastify/session copies a loaded session's fields onto each request's session by reference, so
 * a request mutating one in place (instead of `session.set`) throws rather than changing what
 * other requests see.
 */
export function sessionParser(bounds = PARSED_SESSIONS): (raw: string) => unknown {
  const parsed = new LRUCache<string, object>({ ...bounds, sizeCalculation: (_value, raw) => raw.length })
  return (raw) => {
    const known = parsed.get(raw)
    if (known !== undefined) return known
    let value: unknown
    try {
      value = JSON.parse(raw)
    } catch {
      return undefined
    }
    if (!isStoredSession(value)) return undefined
    deepFreeze(value)
    if ((value as { user?: unknown }).user !== undefined && raw.length <= bounds.maxEntrySize) {
      parsed.set(raw, value as object)
    }
    return value
  }
}

type Fields = Record<string, unknown>
const isObject = (v: unknown): v is Fields => v !== null && typeof v === 'object' && !Array.isArray(v)
/** `v`'s own keys are all in `allowed` (so no `__proto__`, `get` or other key that would shadow a Session member). */
const onlyKeys = (v: Fields, allowed: ReadonlySet<string>) => Object.keys(v).every((k) => allowed.has(k))
const isText = (v: unknown, max: number) => typeof v === 'string' && v.length <= max
const isOptional = (v: unknown, check: (v: unknown) => boolean) => v === undefined || check(v)
const isNullable = (v: unknown, check: (v: unknown) => boolean) => v === null || isOptional(v, check)
const isDate = (v: unknown) => isText(v, 64) && Number.isFinite(Date.parse(v as string))
const isUuidText = (v: unknown) => typeof v === 'string' && isUuid(v)

const SESSION_KEYS = new Set([
  'cookie',
  'user',
  'githubToken',
  'githubRefreshToken',
  'githubTokenExpiresAt',
  'oauthPending',
])
const USER_KEYS = new Set(['id', 'login', 'name', 'avatar_url', 'github_id'])
// What @fastify/session's Cookie#toJSON writes.
const COOKIE_KEYS = new Set([
  'expires',
  'originalMaxAge',
  'originalExpires',
  'sameSite',
  'secure',
  'path',
  'httpOnly',
  'domain',
  'partitioned',
])
const PENDING_KEYS = new Set(['state', 'verifier', 'returnTo', 'expiresAt'])
/** Token envelopes and OAuth values are far shorter; a bound keeps hashing and parsing cheap. */
const MAX_TEXT = 4096

const isUser = (u: unknown) =>
  isObject(u) &&
  onlyKeys(u, USER_KEYS) &&
  isUuidText(u.id) &&
  isText(u.login, 100) &&
  u.login !== '' &&
  isNullable(u.name, (v) => isText(v, MAX_TEXT)) &&
  isNullable(u.avatar_url, (v) => isText(v, MAX_TEXT)) &&
  isOptional(u.github_id, (v) => Number.isSafeInteger(v))

/** Longer than any cookie lifetime the API sets (30 days), short enough for a valid Date. */
const MAX_COOKIE_AGE_MS = 10 * 365 * 24 * 60 * 60 * 1000
// Exactly the attributes the API gives its cookie (sessionCookieOptions): the stored values are
// sent back in Set-Cookie, so a stored `domain: "a;b"` or a huge maxAge would fail every request
// and a stored `httpOnly: false` would weaken the cookie.
const isCookie = (c: unknown) =>
  isObject(c) &&
  onlyKeys(c, COOKIE_KEYS) &&
  isNullable(c.expires, isDate) &&
  isNullable(c.originalExpires, isDate) &&
  isNullable(
    c.originalMaxAge,
    (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_COOKIE_AGE_MS,
  ) &&
  isNullable(c.sameSite, (v) => v === 'lax') &&
  isNullable(c.secure, (v) => typeof v === 'boolean') &&
  isNullable(c.path, (v) => v === '/') &&
  isNullable(c.httpOnly, (v) => v === true) &&
  isNullable(c.domain, () => false) &&
  isNullable(c.partitioned, (v) => v === false)

/**
 * Where a sign-in returns to, as `safeReturnTo` stores it: a normalised same-origin path, so
 * printable ASCII, starting with one `/` (no `//` or `/\\`: another host).
 */
/** Longest `returnTo` a pending sign-in keeps (as normalised: percent-encoding lengthens it). */
export const MAX_RETURN_TO_LENGTH = 2048

const isReturnPath = (v: unknown) =>
  isText(v, MAX_RETURN_TO_LENGTH) && /^\/(?![/\\])[\x21-\x7e]*$/.test(v as string)

const isPendingSignIn = (p: unknown) =>
  isObject(p) &&
  onlyKeys(p, PENDING_KEYS) &&
  isText(p.state, 256) &&
  isText(p.verifier, 256) &&
  Number.isFinite(p.expiresAt) &&
  isOptional(p.returnTo, isReturnPath)

/**
 * Whether a stored session has exactly the shape this API and @fastify/session write: only the
 * keys of {@link SESSION_KEYS}, each with its type (a {@link SessionUser} with a UUID id, string
 * token envelopes, the cookie as `Cookie#toJSON` writes it, pending sign-ins), strings bounded.
 * Anything else in Redis (a bad write, a key changed by hand, another application sharing the
 * prefix) counts as no session: @fastify/session copies every stored key onto the request's
 * Session, so a key such as `__proto__` or `get`, or a deeply nested value, would otherwise break
 * the request (found by an adversarial review: `__proto__` made the process exit).
 */
export function isStoredSession(value: unknown): boolean {
  return (
    isObject(value) &&
    onlyKeys(value, SESSION_KEYS) &&
    isOptional(value.cookie, isCookie) &&
    isOptional(value.user, isUser) &&
    isOptional(value.githubToken, (v) => isText(v, MAX_TEXT)) &&
    isOptional(value.githubRefreshToken, (v) => isText(v, MAX_TEXT)) &&
    isOptional(value.githubTokenExpiresAt, (v) => Number.isFinite(v)) &&
    isOptional(
      value.oauthPending,
      (v) => Array.isArray(v) && v.length <= MAX_PENDING_SIGN_INS && v.every(isPendingSignIn),
    )
  )
}

const storeUnavailable = (cause: unknown) =>
  new AppError(503, 'SESSION_STORE_UNAVAILABLE', 'Sessions are unavailable. Try again shortly.', { cause })

/**
 * Server-side sessions in Redis (JSON at `{prefix}{sid}` on the API's ioredis client), 30-day
 * rolling lifetime (renewed at most hourly, see {@link SESSION_TOUCH_INTERVAL_MS}). Keys live
 * under `REDIS_PREFIX`, so several API processes share them and each test file stays isolated.
 * The cookie only carries the signed session id. With `API_READ_CACHE_MS` > 0, reads go through
 * an in-process cache kept coherent by Redis client tracking (see session-cache.ts).
 */
export default fp(
  async (fastify: FastifyInstance) => {
    const { config } = fastify
    const prefix = sessionKeyPrefix(config.REDIS_PREFIX)
    const redis = fastify.redis
    const cache =
      config.API_READ_CACHE_MS > 0
        ? createSessionCache({
            redis,
            redisUrl: config.REDIS_URL,
            prefix,
            ttlMs: config.API_READ_CACHE_MS,
            log: fastify.log,
          })
        : null
    fastify.decorate('sessionCache', cache)
    if (cache) {
      const stopObserving = observeCache('session', cache.stats)
      fastify.addHook('onClose', async () => stopObserving())
      // Before the Redis plugin's onClose quits the main connection: that loss is not news then.
      fastify.addHook('preClose', () => cache.close())
      // Best effort, like the Redis connection itself: until tracking is on, reads go to Redis.
      if (redis.status === 'ready' && !(await cache.whenTracking(3000))) {
        fastify.log.warn('session cache not tracking at start-up; sessions are read from Redis')
      }
    }
    // An empty value counts as no session (the rule of connect-redis, the store used before).
    const parse = sessionParser()
    // A value that is not a session this API wrote is no session (the caller is anonymous), not
    // a 5xx: Redis answered, and what it holds cannot be used.
    const read = async (sid: string) => {
      const key = `${prefix}${sid}`
      const raw = cache ? await cache.get(key) : (await redis.get(key)) || null
      if (raw === null) return null
      const value = parse(raw)
      if (value !== undefined) return value
      fastify.log.warn({ bytes: raw.length }, 'ignoring a stored session that is not one this API wrote')
      return null
    }
    // Ended sessions leave a tombstone, and writes skip tombstoned ids atomically: a request still
    // in flight when the user logs out (rolling sessions re-save on every response) cannot bring
    // the session back. The keys share the prefix's hash tag, so this also works on a cluster.
    const tomb = (sid: string) => `${prefix}ended:${sid}`
    const saveUnlessEnded = async (sid: string, sess: { cookie?: { expires?: unknown }; user?: unknown }) => {
      const expires = sess.cookie?.expires ? new Date(String(sess.cookie.expires)).getTime() : Number.NaN
      const lifetime = Number.isFinite(expires)
        ? Math.max(1, Math.ceil((expires - Date.now()) / 1000))
        : THIRTY_DAYS_MS / 1000
      // A session with no user holds only sign-ins in progress: it need not outlive them, and
      // anonymous visitors cannot fill Redis with month-long keys.
      const ttl = sess.user ? lifetime : Math.min(lifetime, STATE_ONLY_TTL_S)
      // Own writes are dropped here at once; other processes hear of them through tracking.
      cache?.invalidate(`${prefix}${sid}`)
      try {
        await redis.eval(SAVE_UNLESS_ENDED, 2, `${prefix}${sid}`, tomb(sid), JSON.stringify(sess), ttl)
      } finally {
        cache?.invalidate(`${prefix}${sid}`)
      }
    }
    const end = async (sid: string) => {
      cache?.invalidate(`${prefix}${sid}`)
      try {
        await redis
          .multi()
          .set(tomb(sid), '1', 'EX', THIRTY_DAYS_MS / 1000)
          .del(`${prefix}${sid}`)
          .exec()
      } finally {
        cache?.invalidate(`${prefix}${sid}`)
      }
    }
    fastify.decorate('endSession', async (sid: string) => {
      try {
        await end(sid)
      } catch (err) {
        throw storeUnavailable(err)
      }
    })
    type Cb = (err?: unknown, data?: unknown) => void
    // Redis failures become a 503 with a stable code instead of a bare 500.
    // The callback runs outside the promise chain: a throw in @fastify/session's continuation
    // would otherwise become an unhandled rejection (fatal under close-with-grace) and leave the
    // request unanswered. It is answered as a 500 instead, and logged.
    const wrap =
      (op: (...args: never[]) => Promise<unknown>) =>
      (...args: unknown[]) => {
        const cb = args.pop() as Cb
        const settle = (err: unknown, data?: unknown) => {
          try {
            cb(err, data)
          } catch (thrown) {
            fastify.log.error({ err: thrown }, 'the session plugin failed on a stored session')
            if (err === undefined) cb(thrown)
          }
        }
        ;(op as (...a: unknown[]) => Promise<unknown>)(...args).then(
          (data) => settle(undefined, data ?? null),
          (err: unknown) => settle(storeUnavailable(err)),
        )
      }
    const store = {
      get: wrap(read),
      set: wrap(saveUnlessEnded),
      destroy: wrap(end),
    }

    // Rolling, done here rather than by @fastify/session's `rolling` (which writes the whole
    // session to Redis and signs a new cookie on every response). This hook runs before the
    // session plugin's own onSend: a touch that saves marks the session saved, so the plugin then
    // only renews the cookie. A touch is best effort: when Redis blips, the request's own answer
    // stands and the failure is logged. A request that CHANGED the session is saved by the plugin
    // and fails (503 SESSION_STORE_UNAVAILABLE) when that save fails.
    fastify.addHook('onSend', async (request) => {
      const sess = request.session
      if (!sess?.sessionId || !sess.user || sess.isSaved()) return
      // The expiry as stored (the plugin sets `cookie.expires` to now + maxAge on every load).
      const stored = (sess.cookie as { originalExpires?: Date }).originalExpires?.getTime()
      if (stored !== undefined && stored > Date.now() + THIRTY_DAYS_MS - SESSION_TOUCH_INTERVAL_MS) return
      // Last: isModified() hashes the whole session, and a touch is due at most hourly.
      if (sess.isModified()) return
      try {
        await sess.save()
      } catch (err) {
        request.log.warn({ err }, 'could not renew the session (touch only); the answer stands')
      }
    })

    await fastify.register(session, {
      secret: rememberingSigner(config.SESSION_SECRET),
      cookieName: sessionCookieName(config.PUBLIC_URL),
      store: store as never,
      rolling: false,
      saveUninitialized: false,
      // No `domain`: a __Host- cookie must not have one.
      cookie: { ...sessionCookieOptions(config.PUBLIC_URL), maxAge: THIRTY_DAYS_MS },
    })
  },
  { name: 'session', dependencies: ['cookie', 'redis'] },
)
