import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import oauth2 from '@fastify/oauth2'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/** The OAuth client calls Portico makes (simple-oauth2's AuthorizationCode, set up by @fastify/oauth2). */
export interface GithubOAuthClient {
  authorizeURL(params: Record<string, string>): string
  getToken(params: Record<string, string>): Promise<{ token: Record<string, unknown> }>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The GitHub OAuth client, or null when `GITHUB_OAUTH_CLIENT_ID` is unset. */
    githubOAuth2: GithubOAuthClient | null
  }
  interface Session {
    /**
     * Sign-ins in progress in this browser (one per tab that opened `/auth/login`), oldest
     * first, at most {@link MAX_PENDING_SIGN_INS}. Each is single-use and expires.
     */
    oauthPending?: PendingSignIn[]
  }
}

/** One sign-in in progress: its `state`, its PKCE verifier, where to go afterwards. */
export interface PendingSignIn {
  state: string
  /** PKCE code verifier: kept server-side, never in the browser. */
  verifier: string
  /** Same-origin relative path to return to, when the sign-in asked for one. */
  returnTo?: string
  /** Epoch milliseconds after which the state is refused. */
  expiresAt: number
}

/** How many sign-ins one browser session may have in progress at once (tabs). */
export const MAX_PENDING_SIGN_INS = 5
/** How long a sign-in may take between `/auth/login` and the callback. */
export const SIGN_IN_TTL_MS = 10 * 60 * 1000

const live = (request: FastifyRequest): PendingSignIn[] =>
  (request.session.get('oauthPending') ?? []).filter((p) => p.expiresAt > Date.now())

/**
 * Records a new sign-in in this session (dropping expired ones, and the oldest beyond
 * {@link MAX_PENDING_SIGN_INS}) and returns its state and PKCE S256 challenge.
 */
export function startSignIn(
  request: FastifyRequest,
  returnTo: string | undefined,
): { state: string; codeChallenge: string } {
  const state = randomBytes(24).toString('base64url')
  const verifier = randomBytes(32).toString('base64url')
  const entry: PendingSignIn = { state, verifier, expiresAt: Date.now() + SIGN_IN_TTL_MS }
  if (returnTo !== undefined) entry.returnTo = returnTo
  request.session.set('oauthPending', [...live(request), entry].slice(-MAX_PENDING_SIGN_INS))
  return { state, codeChallenge: createHash('sha256').update(verifier).digest('base64url') }
}

const sameString = (a: string, b: string) => {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * Takes the callback's `state` out of this session's pending sign-ins: the matching, unexpired
 * one is returned and consumed (a state works once, and only in the browser session that
 * started the sign-in). A state that matches none consumes nothing, so a stray or forged
 * callback cannot cancel the sign-ins of other tabs.
 */
export function takeSignIn(request: FastifyRequest): PendingSignIn | undefined {
  const given = (request.query as { state?: unknown }).state
  const stored = request.session.get('oauthPending')
  if (stored === undefined) return undefined
  const pending = live(request)
  const match = typeof given === 'string' ? pending.find((p) => sameString(p.state, given)) : undefined
  const rest = pending.filter((p) => p !== match)
  if (rest.length !== stored.length) request.session.set('oauthPending', rest.length ? rest : undefined)
  return match
}

/**
 * GitHub sign-in through `@fastify/oauth2`'s client: authorization code with PKCE (S256) against
 * `GITHUB_URL`. The states and verifiers live in the server-side session, several at once (see
 * {@link startSignIn}); the routes live in `routes/auth`.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    const { config } = fastify
    if (!config.oauthConfigured) {
      fastify.decorate('githubOAuth2', null)
      return
    }
    await fastify.register(oauth2, {
      name: 'githubOAuth2Plugin',
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
      userAgent: 'portico',
    })
    const namespace = (fastify as unknown as Record<string, { oauth2?: GithubOAuthClient } | undefined>)
      .githubOAuth2Plugin
    if (!namespace?.oauth2) throw new Error('@fastify/oauth2 did not expose its OAuth client')
    fastify.decorate('githubOAuth2', namespace.oauth2)
  },
  { name: 'oauth2', dependencies: ['cookie', 'session'] },
)
