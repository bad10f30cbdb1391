import { timingSafeEqual } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import {
  AppError,
  collectProcessMetrics,
  httpRequestDuration,
  metricsText,
  observeQueueDepth,
} from '@portico/core'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

const sameSecret = (a: string, b: string) => {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * Prometheus metrics (prom-client's default registry, see @portico/core's metrics.ts): request
 * durations recorded here, queue depths read from Redis at scrape time, process metrics.
 * `GET /metrics` needs `Authorization: Bearer METRICS_TOKEN` (401 without it, 403 when no token
 * is configured); `METRICS_PORT` serves the same text on a separate port without a token.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    const { config } = fastify
    collectProcessMetrics()
    const stopObserving = observeQueueDepth(Object.values(fastify.queues))
    fastify.addHook('onClose', async () => stopObserving())

    fastify.addHook('onResponse', async (request, reply) => {
      httpRequestDuration.observe(
        {
          method: request.method,
          route: request.routeOptions.url ?? 'unmatched',
          status_code: String(reply.statusCode),
        },
        reply.elapsedTime / 1000,
      )
    })

    fastify.get(
      '/metrics',
      {
        schema: {
          headers: {
            type: 'object',
            properties: { authorization: { type: 'string', maxLength: 1024 } },
          },
          response: {
            200: { type: 'string', description: 'Prometheus text exposition format.' },
          },
        },
      },
      async (request, reply) => {
        if (!config.METRICS_TOKEN) {
          throw new AppError(403, 'METRICS_DISABLED', 'Metrics need METRICS_TOKEN (or METRICS_PORT).')
        }
        const auth = request.headers.authorization ?? ''
        // The scheme is case-insensitive (RFC 9110 §11.1).
        const token = /^bearer +/i.test(auth) ? auth.replace(/^bearer +/i, '') : ''
        if (!sameSecret(token, config.METRICS_TOKEN)) {
          throw new AppError(401, 'METRICS_TOKEN_REQUIRED', 'Send Authorization: Bearer METRICS_TOKEN.')
        }
        const { contentType, body } = await metricsText()
        return reply.type(contentType).send(body)
      },
    )

    if (config.METRICS_PORT !== undefined) {
      const server: Server = createServer((req, res) => {
        if (req.url !== '/metrics') {
          res.writeHead(404).end()
          return
        }
        metricsText().then(
          ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
          () => res.writeHead(500).end(),
        )
      })
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(config.METRICS_PORT, config.HOST, () => resolve())
      })
      fastify.addHook('onClose', async () => {
        await new Promise<void>((resolve) => server.close(() => resolve()))
      })
    }
  },
  { name: 'metrics', dependencies: ['queues'] },
)
