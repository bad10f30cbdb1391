import rateLimit from '@fastify/rate-limit'
import { AppError } from '@portico/core'
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'

/** One limited group of routes: its name, which routes, and the limit each of them has. */
interface Rule {
  group: string
  matches(method: string, url: string): boolean
  max: number
}

const methods = (route: RouteOptions) => (Array.isArray(route.method) ? route.method : [route.method])

/**
 * Per-client rate limits (`@fastify/rate-limit`) on the routes an abuser would hammer: sign-in
 * (`/auth/*`), repository connection POSTs, `POST /api/pod` and webhook deliveries. Counters live in Redis under
 * `REDIS_PREFIX` (shared by every API process), per route and per signed-in user or else per
 * client IP. Over the limit: 429 `RATE_LIMITED` with `Retry-After` (seconds) and the standard error
 * body. Limits: `RATE_LIMIT_*_MAX` requests per `RATE_LIMIT_WINDOW_SECONDS`.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    const { config } = fastify
    const rules: Rule[] = [
      { group: 'auth', max: config.RATE_LIMIT_AUTH_MAX, matches: (_m, url) => url.startsWith('/auth/') },
      {
        group: 'connections',
        max: config.RATE_LIMIT_CONNECTIONS_MAX,
        // Every connection route that makes GitHub calls with a pasted token or lists installations.
        matches: (m, url) =>
          ((m === 'POST' || m === 'PATCH') && /^\/api\/v1\/projects\/:projectId\/github\/?$/.test(url)) ||
          (m === 'POST' && /^\/api\/v1\/projects\/:projectId\/github\/refresh\/?$/.test(url)) ||
          (m === 'GET' && /^\/api\/v1\/projects\/:projectId\/github\/installations\/?$/.test(url)),
      },
      {
        group: 'deploys',
        max: config.RATE_LIMIT_DEPLOYS_MAX,
        matches: (m, url) => m === 'POST' && /^\/api\/pod\/?$/.test(url),
      },
      {
        // Per IP (GitHub posts without a session): high, since GitHub's hook senders are few and shared.
        group: 'webhooks',
        max: config.RATE_LIMIT_WEBHOOKS_MAX,
        matches: (m, url) => m === 'POST' && /^\/webhooks\//.test(url),
      },
    ]
    // Runs before the plugin's own onRoute hook (registered below), which reads config.rateLimit.
    fastify.addHook('onRoute', (route) => {
      const url = route.url ?? route.path
      const rule = rules.find((r) => methods(route).some((m) => r.matches(String(m), url)))
      if (!rule) return
      route.config = {
        ...(route.config as object),
        rateLimit: { max: rule.max },
      } as typeof route.config
    })
    await fastify.register(rateLimit, {
      global: false,
      redis: fastify.redis,
      nameSpace: `${config.REDIS_PREFIX}:rate-limit:`,
      timeWindow: config.RATE_LIMIT_WINDOW_SECONDS * 1000,
      // A Redis outage already answers 503 where it matters; it must not turn every call into a 500.
      skipOnError: true,
      keyGenerator: (request: FastifyRequest) =>
        request.user ? `user:${request.user.id}` : `ip:${request.ip}`,
      errorResponseBuilder: (_request, context) => {
        const seconds = Math.max(1, Math.ceil(context.ttl / 1000))
        return new AppError(
          429,
          'RATE_LIMITED',
          `Too many requests. Try again in ${seconds} second${seconds === 1 ? '' : 's'}.`,
          { headers: { 'retry-after': String(seconds) }, details: { retry_after: seconds } },
        )
      },
    })
  },
  { name: 'rate-limit', dependencies: ['redis', 'auth'] },
)
