import type { FastifyInstance } from 'fastify'
import { API_PREFIX } from './api.js'
import { ApiError, type SimContext, validationFailed } from './context.js'

const DELETE_TOKEN_DOCS = 'https://docs.github.com/rest/apps/oauth-applications#delete-an-app-token'

/** The `client_id:client_secret` of HTTP Basic authentication, or null. */
function basicCredentials(header: string | undefined): { id: string; secret: string } | null {
  const [scheme = '', value = ''] = (header ?? '').trim().split(/\s+/)
  if (scheme.toLowerCase() !== 'basic' || !value) return null
  const decoded = Buffer.from(value, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return null
  return { id: decoded.slice(0, colon), secret: decoded.slice(colon + 1) }
}

/**
 * OAuth application endpoints, authenticated as the app (Basic `client_id:client_secret`),
 * not with a user token:
 * - `DELETE /applications/{client_id}/token` with `{"access_token": …}`: revokes one OAuth
 *   token; 204. Wrong or missing app credentials, or a token this simulator did not issue
 *   through the OAuth flow (or already revoked): 404 Not Found, as GitHub hides both. No
 *   `access_token`: 422 Validation Failed.
 */
export function registerApplicationRoutes(app: FastifyInstance, ctx: SimContext): void {
  app.route({
    method: 'DELETE',
    url: `${API_PREFIX}/applications/:client_id/token`,
    // Basic app credentials are not a token: the API hooks must not look them up as one.
    config: { route: 'DELETE /applications/{client_id}/token', counted: false, clientAuth: true },
    handler: async (req, reply) => {
      const { client_id } = req.params as { client_id: string }
      const creds = basicCredentials(req.headers.authorization)
      const oauthApp = ctx.world.apps.find((a) => a.client_id === client_id)
      if (!creds || !oauthApp || creds.id !== client_id || creds.secret !== oauthApp.client_secret) {
        throw new ApiError(404, 'Not Found', { documentation_url: DELETE_TOKEN_DOCS })
      }
      const body = (typeof req.body === 'object' && req.body !== null ? req.body : {}) as {
        access_token?: unknown
      }
      if (typeof body.access_token !== 'string' || body.access_token === '') {
        throw validationFailed('Invalid request.\n\n"access_token" wasn\'t supplied.', DELETE_TOKEN_DOCS)
      }
      const rec = ctx.world.tokens.get(body.access_token)
      if (!rec || rec.revoked || rec.kind !== 'oauth') {
        throw new ApiError(404, 'Not Found', { documentation_url: DELETE_TOKEN_DOCS })
      }
      rec.revoked = true
      return reply.code(204).send()
    },
  })
}
