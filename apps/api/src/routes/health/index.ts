import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'

const TIMEOUT_MS = 2000

async function withTimeout<T>(work: Promise<T>, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label} did not answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS)
  })
  try {
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Liveness and readiness probes for orchestrators. */
export default async function health(fastify: FastifyInstance) {
  fastify.get('/live', async () => ({ status: 'ok' }))

  fastify.get('/ready', async (request, reply) => {
    const checks = await Promise.allSettled([
      withTimeout(sql`select 1`.execute(fastify.db), 'postgres'),
      withTimeout(fastify.redis.ping(), 'redis'),
    ])
    const [postgres, redis] = checks.map((c) => (c.status === 'fulfilled' ? 'ok' : 'unavailable'))
    const failing = (['postgres', 'redis'] as const).filter((_, i) => checks[i]?.status === 'rejected')
    for (const [i, c] of checks.entries()) {
      if (c.status === 'rejected')
        request.log.warn({ err: c.reason, dependency: i === 0 ? 'postgres' : 'redis' }, 'not ready')
    }
    if (failing.length === 0) return { status: 'ready', postgres, redis }
    return reply.code(503).send({
      statusCode: 503,
      code: 'NOT_READY',
      error: 'Service Unavailable',
      message: `Not ready: ${failing.join(' and ')} unavailable`,
      postgres,
      redis,
    })
  })
}
