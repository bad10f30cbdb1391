import { randomBytes, timingSafeEqual } from 'node:crypto'
import oauth2, { type OAuth2Namespace } from '@fastify/oauth2'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    /** The GitHub OAuth client, or null when `GITHUB_OAUTH_CLIENT_ID` is unset. */
    githubOAuth2: OAuth2Namespace | null
  }
}

/**
 * Compares the callback's `state` with the one kept in this session, and consumes it: a state
 * works once, and only in the browser session that started the sign-in.
 */
export function consumeOAuthState(request: FastifyRequest): boolean {
  const expected = request.session.get('oauthState')
  if (expected !== undefined) request.session.set('oauthState', undefined)
  const given = (request.query as { state?: unknown }).state
  if (typeof expected !== 'string' || typeof given !== 'string') return false
  const a = Buffer.from(expected)
  const b = Buffer.from(given)
  return a.length === b.length && timingSafeEqual(a, b)
}

/**
 * GitHub sign-in through `@fastify/oauth2`: authorization code with PKCE (S256) against
 * `GITHUB_URL`, the state kept per session. The routes live in `routes/auth`.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    const { config } = fastify
    if (!config.oauthConfigured) {
      fastify.decorate('githubOAuth2', null)
      return
    }
    await fastify.register(oauth2, {
      name: 'githubOAuth2',
      scope: config.GITHUB_OAUTH_SCOPES.split(/\s+/).filter(Boolean),
      credentials: {
        client: {
          id: config.GITHUB_OAUTH_CLIENT_ID as string,
          secret: config.GITHUB_OAUTH_CLIENT_SECRET as string,
        },
        // GitHub's configuration (oauth2.GITHUB_CONFIGURATION), on the configured host.
        auth: {
          tokenHost: config.GITHUB_URL,
          authorizePath: '/login/oauth/authorize',
          tokenPath: '/login/oauth/access_token',
        },
        // GitHub takes the client credentials in the body.
        options: { authorizationMethod: 'body' },
      },
      callbackUri: `${config.PUBLIC_URL}/auth/callback`,
      pkce: 'S256',
      userAgent: 'portico',
      // The verifier cookie is signed and scoped to the callback.
      cookie: {
        signed: true,
        path: '/auth',
        secure: config.PUBLIC_URL.startsWith('https:'),
      },
      generateStateFunction: (request: FastifyRequest) => {
        const state = randomBytes(24).toString('base64url')
        request.session.set('oauthState', state)
        return state
      },
      checkStateFunction: (request: FastifyRequest) => consumeOAuthState(request),
    })
  },
  { name: 'oauth2', dependencies: ['cookie', 'session'] },
)
