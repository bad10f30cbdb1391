import { createHash, randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { githubAppClient, userTokenFields } from './apps.oauth.js'
import type { SimContext } from './context.js'
import type { SeedOAuthApp } from './types.js'

const CODE_TTL_MS = 10 * 60 * 1000
const TROUBLESHOOT =
  'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors'
const AUTHORIZE_TROUBLESHOOT =
  'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors'

interface PendingCode {
  clientId: string
  login: string
  scopes: string[]
  redirectUri: string | null
  challenge: string | null
  expiresAt: number
}

type Params = Record<string, string | undefined>

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]'])

/**
 * GitHub's redirect_uri rule: same scheme, host and port as the registered callback, and a path equal
 * to or below the callback's path. `allow_loopback_redirects` (dev seeds only) also accepts loopback
 * hosts on any port.
 */
export function redirectAllowed(app: SeedOAuthApp, redirectUri: string): boolean {
  if (!URL.canParse(redirectUri)) return false
  const cb = new URL(app.callback_url)
  const ru = new URL(redirectUri)
  const cbPath = cb.pathname.replace(/\/+$/, '')
  const pathOk =
    ru.pathname === cb.pathname ||
    ru.pathname.replace(/\/+$/, '') === cbPath ||
    ru.pathname.startsWith(`${cbPath}/`)
  if (!pathOk || ru.pathname.includes('/../')) return false
  if (ru.protocol === cb.protocol && ru.host === cb.host) return true
  return Boolean(app.allow_loopback_redirects) && ru.protocol === 'http:' && LOOPBACK.has(ru.hostname)
}

function html(reply: FastifyReply, status: number, title: string, body: string) {
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .send(
      `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body>${body}</body></html>`,
    )
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

function normalizeScopes(raw: string | undefined): string[] {
  return [...new Set((raw ?? '').split(/[\s,]+/).filter(Boolean))]
}

/** OAuth web flow: `/login/oauth/authorize` and `/login/oauth/access_token`. */
export function registerOAuthRoutes(app: FastifyInstance, ctx: SimContext): void {
  const codes = new Map<string, PendingCode>()
  // A GitHub App is an OAuth client too (its user tokens are ghu_, see github-apps.ts).
  const findApp = (id: string | undefined) =>
    ctx.world.apps.find((a) => a.client_id === id) ?? githubAppClient(ctx, id)

  /** Validates an authorize request; returns a reply-producing error or the resolved grant. */
  const prepare = (q: Params, reply: FastifyReply) => {
    const oauthApp = findApp(q.client_id)
    if (!oauthApp) {
      html(
        reply,
        404,
        'Not Found',
        `<h1>404</h1><p>No OAuth application with client_id ${esc(q.client_id ?? '')}.</p>`,
      )
      return null
    }
    const redirectUri = q.redirect_uri || null
    if (redirectUri && !redirectAllowed(oauthApp, redirectUri)) {
      // GitHub sends the user back to the registered callback with the error.
      const to = new URL(oauthApp.callback_url)
      to.searchParams.set('error', 'redirect_uri_mismatch')
      to.searchParams.set(
        'error_description',
        'The redirect_uri MUST match the registered callback URL for this application.',
      )
      to.searchParams.set('error_uri', `${AUTHORIZE_TROUBLESHOOT}#redirect-uri-mismatch`)
      if (q.state) to.searchParams.set('state', q.state)
      reply.redirect(to.toString(), 302)
      return null
    }
    if (q.code_challenge && (q.code_challenge_method ?? 'S256') !== 'S256') {
      html(
        reply,
        400,
        'Bad request',
        '<h1>Unsupported code_challenge_method</h1><p>Only S256 is supported.</p>',
      )
      return null
    }
    const requested = q.login ? ctx.world.user(q.login) : undefined
    const user = requested ?? (ctx.world.defaultLogin ? ctx.world.user(ctx.world.defaultLogin) : undefined)
    if (!user) {
      html(reply, 400, 'No user', '<h1>No signed-in user</h1><p>The seed has no oauth.defaultLogin.</p>')
      return null
    }
    return { oauthApp, user, redirectUri, scopes: normalizeScopes(q.scope) }
  }

  const issue = (q: Params, reply: FastifyReply, grant: NonNullable<ReturnType<typeof prepare>>) => {
    const code = randomBytes(10).toString('hex')
    codes.set(code, {
      clientId: grant.oauthApp.client_id,
      login: grant.user.login,
      scopes: grant.scopes,
      redirectUri: grant.redirectUri,
      challenge: q.code_challenge || null,
      expiresAt: Date.now() + CODE_TTL_MS,
    })
    const to = new URL(grant.redirectUri ?? grant.oauthApp.callback_url)
    to.searchParams.set('code', code)
    if (q.state) to.searchParams.set('state', q.state)
    return reply.redirect(to.toString(), 302)
  }

  app.get(
    '/login/oauth/authorize',
    { config: { route: 'GET /login/oauth/authorize' } },
    async (req, reply) => {
      const q = req.query as Params
      const grant = prepare(q, reply)
      if (!grant) return reply
      if (ctx.autoApprove) return issue(q, reply, grant)
      const hidden = Object.entries(q)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v ?? '')}">`)
        .join('')
      const scopes = grant.scopes.length ? grant.scopes.map(esc).join(', ') : '(public information only)'
      return html(
        reply,
        200,
        `Authorize ${grant.oauthApp.name}`,
        `<h1>Authorize ${esc(grant.oauthApp.name)}</h1>
<p>Signed in as <strong id="login">${esc(grant.user.login)}</strong> (${esc(grant.user.name)})</p>
<p>Requested scopes: <span id="scopes">${scopes}</span></p>
<form method="post" action="/login/oauth/authorize">${hidden}<input type="hidden" name="authorize" value="1">
<button type="submit" id="js-oauth-authorize-btn" name="authorize" value="1">Authorize ${esc(grant.oauthApp.name)}</button></form>`,
      )
    },
  )

  app.post(
    '/login/oauth/authorize',
    { config: { route: 'POST /login/oauth/authorize' } },
    async (req, reply) => {
      const q = { ...(req.query as Params), ...((req.body as Params | undefined) ?? {}) }
      const grant = prepare(q, reply)
      if (!grant) return reply
      if (q.authorize !== '1') {
        const to = new URL(grant.redirectUri ?? grant.oauthApp.callback_url)
        to.searchParams.set('error', 'access_denied')
        to.searchParams.set('error_description', 'The user has denied your application access.')
        to.searchParams.set('error_uri', `${AUTHORIZE_TROUBLESHOOT}#access-denied`)
        if (q.state) to.searchParams.set('state', q.state)
        return reply.redirect(to.toString(), 302)
      }
      return issue(q, reply, grant)
    },
  )

  app.post(
    '/login/oauth/access_token',
    { config: { route: 'POST /login/oauth/access_token' } },
    async (req, reply) => {
      const body = typeof req.body === 'object' && req.body !== null ? (req.body as Params) : {}
      const p: Params = { ...(req.query as Params), ...body }
      const wantsJson = (req.headers.accept ?? '').includes('application/json')
      const answer = (fields: Record<string, string | number>) => {
        if (wantsJson) return reply.code(200).type('application/json; charset=utf-8').send(fields)
        const form = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, String(v)]))
        return reply
          .code(200)
          .type('application/x-www-form-urlencoded; charset=utf-8')
          .send(new URLSearchParams(form).toString())
      }
      const fail = (error: string, description: string, anchor: string) =>
        answer({ error, error_description: description, error_uri: `${TROUBLESHOOT}#${anchor}` })

      const oauthApp = findApp(p.client_id)
      if (!oauthApp || oauthApp.client_secret !== p.client_secret) {
        return fail(
          'incorrect_client_credentials',
          'The client_id and/or client_secret passed are incorrect.',
          'incorrect-client-credentials',
        )
      }
      const ghApp = ctx.apps.byClientId(oauthApp.client_id)
      if (p.grant_type === 'refresh_token') {
        const refreshed = ghApp && p.refresh_token ? ctx.apps.refreshUserToken(ghApp, p.refresh_token) : null
        if (!refreshed?.refreshToken)
          return fail(
            'bad_refresh_token',
            'The refresh token passed is incorrect or expired.',
            'bad-refresh-token',
          )
        req.sim.login = refreshed.login
        return answer(userTokenFields(refreshed))
      }
      const code = p.code ? codes.get(p.code) : undefined
      if (!code || code.clientId !== oauthApp.client_id || code.expiresAt < Date.now()) {
        return fail(
          'bad_verification_code',
          'The code passed is incorrect or expired.',
          'bad-verification-code',
        )
      }
      if (
        p.redirect_uri &&
        (code.redirectUri ? p.redirect_uri !== code.redirectUri : !redirectAllowed(oauthApp, p.redirect_uri))
      ) {
        return fail(
          'redirect_uri_mismatch',
          'The redirect_uri MUST match the registered callback URL for this application.',
          'redirect-uri-mismatch',
        )
      }
      if (code.challenge) {
        const verifier = p.code_verifier ?? ''
        const computed = createHash('sha256').update(verifier).digest('base64url')
        if (!verifier || computed !== code.challenge) {
          codes.delete(p.code!)
          return fail(
            'bad_verification_code',
            'The code passed is incorrect or expired.',
            'bad-verification-code',
          )
        }
      }
      codes.delete(p.code!)
      if (ghApp) {
        req.sim.login = code.login
        return answer(userTokenFields(ctx.apps.mintUserToken(ghApp, code.login)))
      }
      const token = `gho_${randomBytes(27).toString('base64url').replace(/[-_]/g, 'x').slice(0, 36)}`
      ctx.world.addToken(code.login, token, { scopes: code.scopes, kind: 'oauth' })
      req.sim.login = code.login
      return answer({ access_token: token, token_type: 'bearer', scope: code.scopes.join(',') })
    },
  )
}

/** Parses `application/x-www-form-urlencoded` bodies into a flat object. */
export function parseForm(_req: FastifyRequest, body: string): Params {
  return Object.fromEntries(new URLSearchParams(body))
}
