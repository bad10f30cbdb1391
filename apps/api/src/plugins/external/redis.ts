import { createRedis, waitForRedis } from '@portico/core'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis
  }
}

/**
 * The API's Redis connection (sessions, queue producers). It fails fast while Redis is away so
 * requests get a 503 rather than hang; it keeps reconnecting in the background.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    const redis = createRedis(fastify.config.REDIS_URL, 'producer')
    redis.on('error', (err) => fastify.log.warn({ err }, 'redis connection error'))
    fastify.decorate('redis', redis)
    // Start degraded rather than not at all: readiness reports Redis until it answers.
    await waitForRedis(redis, 3000).catch((err: unknown) =>
      fastify.log.warn({ err }, 'redis not ready at start-up'),
    )
    fastify.addHook('onClose', async () => {
      // quit() needs a live connection; disconnect() works in every state.
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect())
      else redis.disconnect()
    })
  },
  { name: 'redis' },
)
