import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ErrorBody } from '../../schemas/errors.js'
import { SESSION_COOKIE } from './session.js'

/** OpenAPI tags, by URL prefix (first match wins). */
export const TAGS: { prefix: string; name: string; description: string }[] = [
  { prefix: '/auth', name: 'auth', description: 'GitHub sign-in and sign-out (browser redirects).' },
  { prefix: '/api/auth', name: 'auth', description: '' },
  { prefix: '/api/v1/tenants', name: 'tenants', description: 'Tenants, their members and projects.' },
  { prefix: '/api/v1/projects/:projectId/github', name: 'connections', description: '' },
  { prefix: '/github/setup', name: 'connections', description: '' },
  { prefix: '/api/v1/projects', name: 'projects', description: 'Projects and their members.' },
  { prefix: '/api/deployments', name: 'deployments', description: 'Deployment history and status.' },
  { prefix: '/api', name: 'pods', description: 'Pod specs from the specs repository, and deploys.' },
  { prefix: '/health', name: 'health', description: 'Liveness, readiness and the full health check.' },
  { prefix: '/metrics', name: 'operations', description: 'Prometheus metrics.' },
  {
    prefix: '/webhooks',
    name: 'webhooks',
    description: 'GitHub webhook deliveries (signed; see docs/webhooks.md).',
  },
  { prefix: '/', name: 'home', description: 'The frontend build (STATIC_DIR), else a landing page.' },
]
const TAG_LIST = [
  ...new Map(
    TAGS.map((t) => [
      t.name,
      { name: t.name, description: t.description || 'Repository connections of a project.' },
    ]),
  ).values(),
]
TAG_LIST.find((t) => t.name === 'auth')!.description = 'GitHub sign-in, sign-out and the signed-in user.'

/**
 * Routes anyone may call: no security requirement in the document (webhook deliveries prove
 * themselves with their signature header, described on the operation).
 */
const PUBLIC = [/^\/$/, /^\/health/, /^\/auth\/(login|callback)$/, /^\/webhooks\//]

/**
 * OpenAPI 3.1 generated from the route schemas (`GET /docs/json`, browsable at `GET /docs`):
 * a tag per area, the session cookie as the security scheme, and the common error body on every
 * operation's 4XX/5XX answers. Bull Board and the reference's own routes are left out.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    await fastify.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Portico API',
          version: '1.0.0',
          description:
            "Sign in with GitHub, read and deploy pod specs kept in a GitHub repository, and connect a project's repository. Errors always answer `{ statusCode, code, error, message }`.",
        },
        tags: TAG_LIST,
        components: {
          securitySchemes: {
            session: {
              type: 'apiKey',
              in: 'cookie',
              name: SESSION_COOKIE,
              description: 'The session cookie set by GET /auth/callback after a GitHub sign-in.',
            },
            metricsToken: {
              type: 'http',
              scheme: 'bearer',
              description: 'METRICS_TOKEN (or scrape the separate METRICS_PORT, which takes none).',
            },
          },
          schemas: { ErrorBody: ErrorBody as never },
        },
      },
      hideUntagged: false,
      transform: ({ schema, url, route }) => {
        const s = { ...(schema ?? {}) } as Record<string, unknown>
        if (url.startsWith('/admin') || url.startsWith('/docs')) return { schema: { ...s, hide: true }, url }
        const tag = TAGS.find((t) => url === t.prefix || url.startsWith(`${t.prefix}/`))
        if (!s.tags && tag) s.tags = [tag.name]
        if (!s.security && url === '/metrics') s.security = [{ metricsToken: [] }]
        if (!s.security && !PUBLIC.some((re) => re.test(url))) s.security = [{ session: [] }]
        const error = {
          description: 'Error: `{ statusCode, code, error, message }`.',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } },
        }
        s.response = { ...(s.response as object | undefined), '4XX': error, '5XX': error }
        void route
        // A resource's root route is registered as `/api/v1/tenants/` (autoload's folder prefix);
        // both forms answer, and the documentation names it as people write it.
        return { schema: s as never, url: url.length > 1 ? url.replace(/\/$/, '') : url }
      },
    })
    await fastify.register(swaggerUi, { routePrefix: '/docs', staticCSP: false })
  },
  { name: 'swagger' },
)
