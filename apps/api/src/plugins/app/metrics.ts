import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import { AppError, collectProcessMetrics, metricsText, observeQueueDepth, sendErrorBody } from '@portico/core'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import client from 'prom-client'
import { errorResponses } from '../../schemas/common.js'
import { clientErrorHandler } from '../../server-options.js'
import { answerOnSocket } from './request-target.js'

/** HTTP request duration by route template (`routeOptions.url`, or `unmatched`), method and status. */
const httpRequestDuration = new client.Histogram({
  name: 'portico_http_request_duration_seconds',
  help: 'API request duration in seconds, by route template, method and status code.',
  labelNames: ['method', 'route', 'status_code'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
})

const digest = (text: string) => createHash('sha256').update(text).digest()
/**
 * Compares two secrets in constant time: their SHA-256 digests (always 32 bytes) are compared, so
 * neither the contents nor the length of METRICS_TOKEN shows in the timing.
 */
const sameSecret = (a: string, b: string) => timingSafeEqual(digest(a), digest(b))

/**
 * The bearer token of an `Authorization` header, or undefined when there is none: no header,
 * another scheme, or the scheme alone. The scheme is case-insensitive (RFC 9110 §11.1).
 */
function bearerToken(header: string | undefined): string | undefined {
  const match = /^bearer +(.*)$/i.exec(header ?? '')
  const token = match?.[1]?.trim()
  return token ? token : undefined
}

/** No bearer token: RFC 6750 §3.1, a challenge without an error code. */
const tokenRequired = () =>
  new AppError(
    401,
    'METRICS_TOKEN_REQUIRED',
    'A bearer token is required: send Authorization: Bearer METRICS_TOKEN.',
    { headers: { 'www-authenticate': 'Bearer realm="metrics"' } },
  )
/** A bearer token that is not METRICS_TOKEN: RFC 6750 §3.1, `error="invalid_token"`. */
const tokenInvalid = () =>
  new AppError(401, 'METRICS_TOKEN_INVALID', 'The bearer token is not valid for /metrics.', {
    headers: { 'www-authenticate': 'Bearer realm="metrics", error="invalid_token"' },
  })

/**
 * Prometheus metrics (prom-client's default registry, see @portico/core's metrics.ts): request
 * durations recorded here, queue depths read from Redis at scrape time, process metrics.
 * `GET /metrics` needs `Authorization: Bearer METRICS_TOKEN`: 401 `METRICS_TOKEN_REQUIRED`
 * without a bearer token, 401 `METRICS_TOKEN_INVALID` with a wrong one (both with a
 * `WWW-Authenticate: Bearer` challenge), 403 `METRICS_DISABLED` when no token is configured;
 * `METRICS_PORT` serves the same text on a separate port without a token.
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
          summary: 'Prometheus metrics of this API process',
          description:
            'Prometheus metrics. Send `Authorization: Bearer METRICS_TOKEN`: without a bearer token 401 `METRICS_TOKEN_REQUIRED`, with a wrong one 401 `METRICS_TOKEN_INVALID` (`WWW-Authenticate: Bearer …, error="invalid_token"`); 403 `METRICS_DISABLED` when METRICS_TOKEN is not set.',
          headers: {
            type: 'object',
            properties: { authorization: { type: 'string', maxLength: 1024 } },
          },
          response: {
            // Documented as sent: prom-client's text/plain, not JSON (a trial).
            200: {
              description: 'Prometheus text exposition format.',
              content: { 'text/plain; version=0.0.4': { schema: { type: 'string' } } },
            },
            ...errorResponses(401, 403),
          },
        },
      },
      async (request, reply) => {
        if (!config.METRICS_TOKEN) {
          // A new user's trial: with METRICS_PORT set, "need METRICS_TOKEN (or METRICS_PORT)" did
          // not say where the metrics were.
          throw new AppError(
            403,
            'METRICS_DISABLED',
            config.METRICS_PORT !== undefined
              ? `Metrics are served on METRICS_PORT (port ${config.METRICS_PORT}, path /metrics), not here; set METRICS_TOKEN to serve them here too.`
              : 'Metrics need METRICS_TOKEN (or METRICS_PORT).',
          )
        }
        const token = bearerToken(request.headers.authorization)
        if (token === undefined) throw tokenRequired()
        if (!sameSecret(token, config.METRICS_TOKEN)) throw tokenInvalid()
        const { contentType, body } = await metricsText()
        return reply.type(contentType).send(body)
      },
    )

    if (config.METRICS_PORT !== undefined) {
      // A bare listener (no Fastify): its answers are written in the API's one error body here.
      const server: Server = createServer((req, res) => {
        if (req.url?.split('?')[0] !== '/metrics') {
          sendErrorBody(res, 404, 'NOT_FOUND', 'The metrics listener serves GET /metrics only.')
          return
        }
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          sendErrorBody(
            res,
            405,
            'METHOD_NOT_ALLOWED',
            `${req.method} is not allowed on /metrics: use GET.`,
            {
              allow: 'GET, HEAD',
            },
          )
          return
        }
        metricsText().then(
          ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
          (err: unknown) => {
            fastify.log.error({ err }, 'collecting metrics failed')
            sendErrorBody(res, 500, 'INTERNAL_ERROR', 'The metrics could not be collected.')
          },
        )
      })
      // Malformed requests, oversized headers and CONNECT get the main port's answers.
      server.on('clientError', clientErrorHandler)
      server.on('connect', (_req, socket) => {
        answerOnSocket(socket, 405, 'METHOD_NOT_ALLOWED', 'CONNECT is not allowed on /metrics: use GET.')
        socket.destroy()
      })
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(config.METRICS_PORT, config.HOST, () => resolve())
      })
      fastify.addHook('onClose', async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()))
        // A scrape is short: whatever is still connected (a client that sent half a request and
        // stopped, which Node no longer times out once the server closes) would hold the close.
        server.closeAllConnections()
        await closed
      })
    }
  },
  { name: 'metrics', dependencies: ['queues'] },
)
