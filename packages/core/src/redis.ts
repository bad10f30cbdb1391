import { Redis, type RedisOptions } from 'ioredis'

/**
 * How a Redis connection behaves when Redis is away.
 * - `producer`: fail fast (no offline queue, one retry per command) so an HTTP request gets a
 *   clear 503 instead of hanging.
 * - `worker`: BullMQ blocking connections must wait forever (`maxRetriesPerRequest: null`).
 */
export type RedisRole = 'producer' | 'worker'

/** ioredis options for a role, from a `redis://` or `rediss://` URL. */
export function redisOptions(role: RedisRole): RedisOptions {
  const common: RedisOptions = {
    connectionName: `portico-${role}`,
    // Back off up to 2 s between reconnects; never give up, BullMQ recovers when Redis returns.
    retryStrategy: (times) => Math.min(times * 100, 2000),
    // A goodbye the peer never answers (a dark path, a frozen Redis) ends the socket after 0.5 s,
    // not ioredis' 2 s: shutdown waits on it (ms).
    disconnectTimeout: 500,
  }
  return role === 'producer'
    ? { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2000 }
    : { ...common, maxRetriesPerRequest: null, enableReadyCheck: true }
}

/** Opens a Redis connection for a role. The caller owns it and must `quit()` it. */
export function createRedis(url: string, role: RedisRole, overrides: RedisOptions = {}): Redis {
  return new Redis(url, { ...redisOptions(role), ...overrides })
}

/** Resolves once a connection is ready, or rejects after `timeoutMs`. */
export async function waitForRedis(redis: Redis, timeoutMs = 5000): Promise<void> {
  if (redis.status === 'ready') return
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`Redis not ready after ${timeoutMs} ms`))
    }, timeoutMs)
    const onReady = () => {
      cleanup()
      resolve()
    }
    const cleanup = () => {
      clearTimeout(timer)
      redis.off('ready', onReady)
    }
    redis.on('ready', onReady)
  })
}
