import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import {
  AppError,
  classifyGithubError,
  createOctokit,
  decrypt,
  encrypt,
  githubErrorToAppError,
} from '@portico/core'
import { upsertUserFromGithub } from '@portico/db'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { startSignIn, takeSignIn } from '../../plugins/external/oauth2.js'
import {
  MAX_RETURN_TO_LENGTH,
  sessionCookieName,
  sessionCookieOptions,
} from '../../plugins/external/session.js'
import { CallbackQuery, LoginQuery, LogoutResponse } from '../../schemas/auth.js'
import { errorResponses } from '../../schemas/common.js'
import { Redirect } from '../../schemas/errors.js'

/** The frontend's sentence; `hint`, when given, says what to do. */
const invalidState = (hint?: string) =>
  new AppError(400, 'INVALID_OAUTH_STATE', 'Invalid state parameter. Please try logging in again.', {
    ...(hint ? { details: { hint } } : {}),
  })
const exchangeFailed = (message: string) =>
  new AppError(400, 'OAUTH_EXCHANGE_FAILED', `GitHub did not complete the sign-in: ${message}`)
const githubUnavailable = (cause: unknown) =>
  new AppError(502, 'GITHUB_UNAVAILABLE', 'GitHub could not be reached. Try again shortly.', {
    cause,
    expose: true,
  })

/** The OAuth client, or 503 OAUTH_NOT_CONFIGURED when no GitHub OAuth app is configured. */
function oauthClient(fastify: FastifyInstance) {
  const oauth = fastify.githubOAuth2
  if (!oauth) {
    throw new AppError(503, 'OAUTH_NOT_CONFIGURED', 'Sign-in with GitHub is not configured on this server.', {
      expose: true,
    })
  }
  return oauth
}

/** A person is waiting on the callback: a longer GitHub rate-limit wait is answered as 503 with `retry_after`. */
const INTERACTIVE_MAX_WAIT_SECONDS = 10

/** How long logout waits for GitHub to revoke the token before giving up (and logging it). */
const REVOKE_TIMEOUT_MS = 5000

const hasControlCharacter = (s: string) =>
  [...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)

/**
 * A same-origin relative path to return to after sign-in, or undefined when `value` is not one
 * (absolute and protocol-relative URLs, backslashes and control characters are refused).
 */
export function safeReturnTo(value: string, publicUrl: string): string | undefined {
  if (!value.startsWith('/') || value.startsWith('//') || /[\\\s]/.test(value) || hasControlCharacter(value))
    return undefined
  const base = new URL(publicUrl)
  let url: URL
  try {
    url = new URL(value, base)
  } catch {
    return undefined
  }
  if (url.origin !== base.origin) return undefined
  const path = `${url.pathname}${url.search}${url.hash}`
  // The normalised path is what the browser gets: `/.//evil.example` normalises to
  // `//evil.example`, a protocol-relative URL to another host. Check what is returned, too.
  if (!path.startsWith('/') || path.startsWith('//') || path.startsWith('/\\')) return undefined
  // Normalising percent-encodes (`é` becomes six characters): a path stored longer than the
  // session reader accepts made the whole session unreadable, signing the user out.
  if (path.length > MAX_RETURN_TO_LENGTH) return undefined
  return path
}

/** GitHub sign-in: `/auth/login`, `/auth/callback`, `/auth/logout`. */
export default async function authRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  const { config } = fastify

  const scope = config.GITHUB_OAUTH_SCOPES.split(/\s+/).filter(Boolean).join(' ')
  const redirectUri = `${config.PUBLIC_URL}/auth/callback`
  const cookieName = sessionCookieName(config.PUBLIC_URL)
  fastify.get(
    '/login',
    {
      schema: {
        summary: "Start the GitHub sign-in: 302 to GitHub's authorization page",
        description:
          'For a browser to navigate to, not to fetch. `returnTo` (a relative path on this site; 400 INVALID_RETURN_TO otherwise) is where GET /auth/callback sends the browser once signed in. 503 OAUTH_NOT_CONFIGURED when no GitHub OAuth app is configured.',
        querystring: LoginQuery,
        response: { 302: Redirect, ...errorResponses(400, 429, 503) },
      },
    },
    async (request, reply) => {
      const oauth = oauthClient(fastify)
      const { returnTo } = request.query
      let safe: string | undefined
      if (returnTo !== undefined) {
        safe = safeReturnTo(returnTo, config.PUBLIC_URL)
        if (!safe) {
          throw new AppError(400, 'INVALID_RETURN_TO', 'returnTo must be a relative path on this site.')
        }
      }
      // Each tab's sign-in gets its own state and verifier; earlier ones stay valid.
      const { state, codeChallenge } = startSignIn(request, safe)
      const url = oauth.authorizeURL({
        redirect_uri: redirectUri,
        scope,
        state,
        code_challenge: codeChallenge,
        code_challenge_method: 'S256',
      })
      return reply.redirect(url, 302)
    },
  )

  fastify.get(
    '/callback',
    {
      schema: {
        summary: 'Finish the GitHub sign-in (GitHub redirects here): set the session, 302 to `returnTo`',
        description:
          'Called by GitHub, not by the frontend. The session cookie is set on a new session id and the browser goes to the `returnTo` given to GET /auth/login (else `/`). 400 INVALID_OAUTH_STATE (no sign-in pending in this browser: start again at GET /auth/login), OAUTH_ACCESS_DENIED, OAUTH_AUTHORIZE_FAILED, OAUTH_CODE_MISSING, OAUTH_EXCHANGE_FAILED; 502 GITHUB_UNAVAILABLE; 503 OAUTH_NOT_CONFIGURED or GITHUB_RATE_LIMITED.',
        querystring: CallbackQuery,
        response: { 302: Redirect, ...errorResponses(400, 403, 429, 502, 503) },
      },
    },
    async (request, reply) => {
      const oauth = oauthClient(fastify)
      const q = request.query
      if (!q.state) throw invalidState()
      const pending = takeSignIn(request)
      if (!pending) {
        // No session cookie at all: most often a sign-in begun at another address than PUBLIC_URL
        // (127.0.0.1 for localhost), whose cookie stayed there. The sentence is the frontend's
        // contract; the hint says what to do.
        if (request.cookies[cookieName] === undefined) {
          throw invalidState(
            `This request brought no session cookie: start the sign-in at ${config.PUBLIC_URL}/auth/login, in a browser that keeps cookies (one begun at another address, such as 127.0.0.1 for localhost, cannot finish here).`,
          )
        }
        throw invalidState()
      }
      if (q.error) {
        throw new AppError(
          400,
          q.error === 'access_denied' ? 'OAUTH_ACCESS_DENIED' : 'OAUTH_AUTHORIZE_FAILED',
          `GitHub did not authorize the sign-in: ${q.error_description ?? q.error}`,
        )
      }
      if (!q.code) {
        throw new AppError(
          400,
          'OAUTH_CODE_MISSING',
          'The sign-in callback has no code. Please try logging in again.',
        )
      }

      let result: Record<string, unknown>
      try {
        const token = await oauth.getToken({
          code: q.code,
          redirect_uri: redirectUri,
          code_verifier: pending.verifier,
        })
        result = token.token
      } catch (err) {
        const status = (err as { output?: { statusCode?: number } }).output?.statusCode
        if (status && status >= 400 && status < 500)
          throw exchangeFailed(`the token endpoint answered ${status}`)
        throw githubUnavailable(err)
      }
      // GitHub answers token errors with 200 and an `error` field.
      if (typeof result.error === 'string') {
        throw exchangeFailed(String(result.error_description ?? result.error))
      }
      const accessToken = result.access_token
      if (typeof accessToken !== 'string' || accessToken === '')
        throw exchangeFailed('no access token was issued')

      let profile: { id: number; login: string; name: string | null; avatar_url: string | null }
      try {
        const { data } = await createOctokit({
          token: accessToken,
          baseUrl: config.GITHUB_API_URL,
          maxRetryAfterSeconds: INTERACTIVE_MAX_WAIT_SECONDS,
        }).rest.users.getAuthenticated()
        profile = {
          id: data.id,
          login: data.login,
          name: data.name ?? null,
          avatar_url: data.avatar_url ?? null,
        }
      } catch (err) {
        // By cause: a rate limit or an organisation policy is not "GitHub unreachable".
        if (classifyGithubError(err).kind === 'unauthorized')
          throw exchangeFailed('the issued token was rejected')
        throw githubErrorToAppError(err)
      }
      const user = await upsertUserFromGithub(fastify.db, profile, {
        // Operators hear of every conflict, also those a run again resolved.
        onRetry: (err, attempt) =>
          request.log.warn(
            { err, attempt },
            'sign-in: Postgres ended the user upsert for another transaction; running it again',
          ),
      })
      const returnTo = pending.returnTo ?? '/'
      // Other tabs' sign-ins stay pending: any of them may still complete (and sign in again).
      const otherTabs = request.session.get('oauthPending')
      // A new session id at sign-in: an id planted before the login is worthless afterwards.
      await request.session.regenerate()
      if (otherTabs?.length) request.session.set('oauthPending', otherTabs)
      const sessionUser = {
        id: user.id,
        login: user.login,
        name: user.name,
        avatar_url: user.avatar_url,
        github_id: profile.id,
      }
      request.session.set('user', sessionUser)
      request.session.set('githubToken', encrypt(config.keyring, accessToken))
      // A GitHub App as the OAuth client issues 8-hour user tokens with a refresh token: keep both
      // (encrypted) so the session outlives the access token (plugins/app/auth.ts refreshes it).
      const expiresIn = Number(result.expires_in)
      if (typeof result.refresh_token === 'string' && result.refresh_token && expiresIn > 0) {
        request.session.set('githubRefreshToken', encrypt(config.keyring, result.refresh_token))
        request.session.set('githubTokenExpiresAt', Date.now() + expiresIn * 1000)
      }
      request.user = { ...sessionUser }
      request.log.info({ userId: user.id, login: user.login }, 'signed in')
      return reply.redirect(returnTo, 302)
    },
  )

  /**
   * Revokes an OAuth token at GitHub (`DELETE /applications/{client_id}/token`, Basic client
   * credentials, the token in the JSON body). Best effort: a failure is logged, never thrown.
   */
  const revokeAtGithub = async (request: FastifyRequest, token: string) => {
    const clientId = config.GITHUB_OAUTH_CLIENT_ID
    const secret = config.GITHUB_OAUTH_CLIENT_SECRET
    if (!clientId || !secret) return
    try {
      const res = await fetch(`${config.GITHUB_API_URL}/applications/${encodeURIComponent(clientId)}/token`, {
        method: 'DELETE',
        headers: {
          authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
          accept: 'application/vnd.github+json',
          'content-type': 'application/json',
          'user-agent': 'portico',
          'x-github-api-version': '2022-11-28',
        },
        body: JSON.stringify({ access_token: token }),
        signal: AbortSignal.timeout(REVOKE_TIMEOUT_MS),
      })
      await res.body?.cancel()
      if (res.status !== 204) {
        request.log.warn({ status: res.status }, 'GitHub did not revoke the OAuth token at logout')
      }
    } catch (err) {
      request.log.warn({ err }, 'could not reach GitHub to revoke the OAuth token at logout')
    }
  }

  // The landing page's "Sign out" button is an HTML form: a browser posts it as
  // application/x-www-form-urlencoded (an empty one). Its fields are not read.
  fastify.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { bodyLimit: 1024 },
    (_request, _body, done) => done(null, undefined),
  )
  fastify.post(
    '/logout',
    {
      schema: {
        summary: 'Sign out: `{success: true}`, or a 303 to `/` for an HTML form post',
        response: { 200: LogoutResponse, 303: Redirect, ...errorResponses(403, 429) },
      },
    },
    async (request, reply) => {
      const envelope = request.session?.get('githubToken')
      if (request.session?.sessionId) await request.session.destroy()
      request.user = null
      // Only a request that carried the cookie clears it: such a request passed the CSRF Origin
      // check. A form posted from another site arrives without it (SameSite=Lax) and must not sign
      // the user out through the Set-Cookie a browser still applies (found by an adversarial review).
      if (request.cookies[cookieName] !== undefined) {
        reply.clearCookie(cookieName, sessionCookieOptions(config.PUBLIC_URL))
      }
      if (envelope) {
        let token: string | undefined
        try {
          token = decrypt(config.keyring, envelope)
        } catch {
          // Sealed with a key since retired: nothing Portico can still use or revoke.
        }
        if (token) await revokeAtGithub(request, token)
      }
      // A browser that submitted the form would otherwise show the JSON as a page.
      if (request.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
        return reply.redirect('/', 303)
      }
      return { success: true as const }
    },
  )
}
