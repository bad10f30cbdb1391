import { generationCache, type RedisSubscription, subscribeChannel } from '@portico/core'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { LRUCache } from 'lru-cache'

/** A helper of session.ts, not a plugin of its own (this folder is autoloaded). */
export const autoload = false

/** Pub/sub channel Redis sends tracking invalidations to in RESP2 (REDIRECT mode). */
export const INVALIDATE_CHANNEL = '__redis__:invalidate'

/** Counters of {@link SessionCache.get}, since the cache was created. */
export interface SessionCacheStats {
  /** Answered from memory. */
  hits: number
  /** Read from Redis while tracking held (the answer may have been kept). */
  misses: number
  /** Read from Redis because tracking was not established (nothing kept). */
  bypasses: number
  /** Invalidation messages received (one per message, whatever the number of keys in it). */
  invalidations: number
}

/** Options of {@link createSessionCache}. */
export interface SessionCacheOptions {
  /** The connection sessions are read and written on; tracking is turned on for it. */
  redis: Redis
  /** Where to open the subscriber connection (`redis://` or `rediss://`). */
  redisUrl: string
  /** Key prefix of the sessions (`sessionKeyPrefix(REDIS_PREFIX)`); only these keys are tracked. */
  prefix: string
  /** How long an entry may be served (ms, > 0): bounds staleness if an invalidation is lost. */
  ttlMs: number
  log: FastifyBaseLogger
  /** Most entries kept (default 10,000). */
  max?: number
  /** Most characters kept, keys and values together (default 16 Mi, about 32 MiB of heap). */
  maxSize?: number
}

/** An in-process cache of raw session JSON, kept coherent with Redis by client-side tracking. */
export interface SessionCache {
  /**
   * The raw JSON stored at `key` (a full Redis key, prefix included), or null when there is none
   * (an empty string counts as none, as the store always had it). From memory while tracking holds,
   * else from Redis. Rejects with the Redis error when Redis is asked and fails.
   */
  get(key: string): Promise<string | null>
  /** Drops `key` here at once; call it around this process's own writes to the key. */
  invalidate(key: string): void
  /** True while tracking is established, i.e. while entries are served and kept. */
  readonly tracking: boolean
  readonly stats: Readonly<SessionCacheStats>
  /** Resolves with {@link tracking} once it is true, or after `timeoutMs` (ms). */
  whenTracking(timeoutMs: number): Promise<boolean>
  /** Closes the subscriber connection; the cache then only bypasses. */
  close(): Promise<void>
}

/** Stored for a key with no session, so that answer can be cached too (a key's SET invalidates it). */
const ABSENT = ''

/**
 * Session reads from memory, coherent across API processes through Redis server-assisted
 * client-side caching (https://redis.io/docs/latest/develop/reference/client-side-caching/):
 * `redis` runs `CLIENT TRACKING ON REDIRECT <subscriber id> BCAST PREFIX <prefix>` (no NOLOOP, so
 * this process's own writes are reported too), and a dedicated subscriber connection receives, on
 * {@link INVALIDATE_CHANNEL}, the names of every key under `prefix` that anyone modifies, deletes
 * or lets expire, or null when the database is flushed.
 *
 * Entries are served only while tracking is established: until both connections are ready and
 * tracking is on, and from any close, end, reconnection or error of either connection until it
 * is set up again (the subscriber's id changes on reconnect), the cache is emptied and bypassed.
 * A read that raced an invalidation (a generation counter moved during the GET) is not kept.
 */
export function createSessionCache(opts: SessionCacheOptions): SessionCache {
  const { redis, prefix, log } = opts
  const lru = new LRUCache<string, string>({
    max: opts.max ?? 10_000,
    maxSize: opts.maxSize ?? 16 * 1024 * 1024,
    // A session far larger than usual is read from Redis every time rather than evicting others.
    maxEntrySize: 64 * 1024,
    sizeCalculation: (value, key) => key.length + value.length,
    ttl: opts.ttlMs,
  })
  const stats: SessionCacheStats = { hits: 0, misses: 0, bypasses: 0, invalidations: 0 }
  let tracking = false
  let closed = false
  // Bumped when either connection is lost: a set-up started before then must not finish.
  let epoch = 0
  // CLIENT ID of the subscriber once it listens on the channel; undefined while it does not.
  let subscriberId: number | undefined
  let waiters: (() => void)[] = []
  // Every invalidation and every loss of tracking calls reads.changed(): a GET that saw one is not
  // kept. Concurrent misses of one key share one GET (a joined read counts as a hit).
  const reads = generationCache({
    stats,
    // Tracking holds and the subscriber answered a PING recently: entries may be served and kept.
    live: () => tracking && subscription.live,
  })
  const read = reads.reader<string | null>({
    get(key) {
      const cached = lru.get(key)
      return cached === undefined ? undefined : { value: cached === ABSENT ? null : cached }
    },
    set: (key, raw) => lru.set(key, raw ?? ABSENT),
  })

  const lose = (what: string) => {
    epoch += 1
    reads.changed()
    lru.clear()
    // Closing the app is not news; a connection lost while serving is.
    if (tracking && !closed) log.warn({ connection: what }, 'session cache off until Redis tracking is back')
    tracking = false
  }

  // Serialized: TRACKING ON while already on (same prefix) is an error, so each set-up starts OFF.
  let chain: Promise<void> = Promise.resolve()
  const establish = () => {
    chain = chain.then(async () => {
      const attempt = epoch
      const id = subscriberId
      if (closed || tracking || id === undefined || redis.status !== 'ready') return
      try {
        await redis.client('TRACKING', 'OFF')
        await redis.client('TRACKING', 'ON', 'REDIRECT', String(id), 'BCAST', 'PREFIX', prefix)
      } catch (err) {
        log.warn({ err }, 'could not turn on Redis client tracking; sessions are read from Redis')
        return
      }
      if (attempt !== epoch || id !== subscriberId || redis.status !== 'ready') return
      lru.clear()
      reads.changed()
      tracking = true
      for (const wake of waiters) wake()
      waiters = []
    })
  }

  const onMainLost = () => lose('main')
  const onMainError = () => {
    lose('main')
    // An error that left the connection up emits no 'ready': set tracking up again (a no-op
    // unless the connection is still ready by then).
    setImmediate(establish)
  }
  const onMainReady = () => establish()
  const mainEvents = [
    ['close', onMainLost],
    ['end', onMainLost],
    ['reconnecting', onMainLost],
    ['error', onMainError],
    ['ready', onMainReady],
  ] as const
  for (const [event, listener] of mainEvents) redis.on(event, listener)

  const subscription: RedisSubscription = subscribeChannel<number>({
    redisUrl: opts.redisUrl,
    connectionName: 'portico-session-cache',
    channel: INVALIDATE_CHANNEL,
    what: 'session cache subscriber',
    log,
    // Tracking is redirected to the subscriber by its id, which a subscribed connection cannot ask.
    prepare: async (connection) => (await connection.client('ID')) as number,
    onSubscribed(id) {
      subscriberId = id
      establish()
    },
    onLost() {
      subscriberId = undefined
      lose('subscriber')
    },
    onMessage(message) {
      stats.invalidations += 1
      reads.changed()
      // null: the database was flushed. Anything but a list of key names is treated the same way.
      if (!Array.isArray(message)) {
        lru.clear()
        return
      }
      for (const key of message) lru.delete(key.toString())
    },
  })

  return {
    get(key) {
      return read(key, async () => (await redis.get(key)) || null)
    },
    invalidate(key) {
      reads.changed()
      lru.delete(key)
    },
    get tracking() {
      return tracking
    },
    stats,
    whenTracking(timeoutMs) {
      if (tracking || closed) return Promise.resolve(tracking)
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== wake)
          resolve(tracking)
        }, timeoutMs)
        const wake = () => {
          clearTimeout(timer)
          resolve(tracking)
        }
        waiters.push(wake)
      })
    },
    async close() {
      closed = true
      lose('closed')
      for (const wake of waiters) wake()
      waiters = []
      for (const [event, listener] of mainEvents) redis.off(event, listener)
      // Best effort: the main connection usually closes next, which ends tracking anyway.
      if (redis.status === 'ready') await redis.client('TRACKING', 'OFF').catch(() => undefined)
      subscription.close()
    },
  }
}
