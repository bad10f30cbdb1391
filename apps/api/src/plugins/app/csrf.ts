import { AppError } from '@portico/core'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { sessionCookieName } from '../external/session.js'

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

function originOf(value: string): string | undefined {
  try {
    return new URL(value).origin
  } catch {
    return undefined
  }
}

/**
 * CSRF defence for cookie-authenticated writes: the browser-sent `Origin` (or, without it, the
 * `Referer`) must be `PUBLIC_URL`'s origin or one of `ALLOWED_ORIGINS`. Requests with neither
 * header come from non-browser clients and pass; requests without the session cookie carry no
 * ambient authority and pass.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    const cookieName = sessionCookieName(fastify.config.PUBLIC_URL)
    const site = new URL(fastify.config.PUBLIC_URL).origin
    const allowed = new Set([site, ...fastify.config.allowedOrigins])
    fastify.addHook('onRequest', async (request: FastifyRequest) => {
      if (!STATE_CHANGING.has(request.method) || request.cookies[cookieName] === undefined) return
      const origin = request.headers.origin
      const referer = request.headers.referer
      const source = origin !== undefined ? origin : referer !== undefined ? originOf(referer) : null
      if (source === null) return
      if (source === undefined || !allowed.has(source)) {
        throw new AppError(
          403,
          'CSRF_ORIGIN_MISMATCH',
          `Cross-site request refused: the request origin is not allowed to act with your session (use ${site}, this site's PUBLIC_URL).`,
        )
      }
    })
  },
  { name: 'csrf', dependencies: ['cookie'] },
)
