import { createHash, randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { authenticateAppJwt } from './apps.routes.js'
import { ApiError, type Bucket, type RequestState, type SimContext } from './context.js'
import { looksLikeJwt } from './jwt.js'

declare module 'fastify' {
  interface FastifyRequest {
    sim: RequestState
  }
  interface FastifyContextConfig {
    /** Route template for the ledger, e.g. `GET /repos/{owner}/{repo}`. */
    route?: string
    /** Sent as `x-accepted-oauth-scopes`. */
    acceptedScopes?: string
    /** False for routes that do not count against the core rate limit (`/rate_limit`). */
    counted?: boolean
    /** Authenticated as an OAuth app (Basic client_id:client_secret), not with a token. */
    clientAuth?: boolean
  }
}

export const API_PREFIX = '/api/v3'
const RATE_DOCS =
  'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits'

type Handler = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>

/** Registers REST routes written with GitHub's `{param}` templates (a `{name*}` param may contain slashes). */
export class ApiRouter {
  constructor(readonly app: FastifyInstance) {}

  route(method: string, template: string, opts: { scopes?: string; counted?: boolean }, handler: Handler) {
    const url = API_PREFIX + template.replace(/\{(\w+)\*\}/g, '*').replace(/\{(\w+)\}/g, ':$1')
    const display = template.replace(/\{(\w+)\*\}/g, '{$1}')
    this.app.route({
      method,
      url,
      config: {
        route: `${method} ${display}`,
        acceptedScopes: opts.scopes ?? '',
        counted: opts.counted ?? true,
      },
      handler,
    })
  }

  get(t: string, h: Handler, opts: { scopes?: string; counted?: boolean } = {}) {
    this.route('GET', t, opts, h)
  }
  post(t: string, h: Handler, opts: { scopes?: string } = {}) {
    this.route('POST', t, opts, h)
  }
  put(t: string, h: Handler, opts: { scopes?: string } = {}) {
    this.route('PUT', t, opts, h)
  }
  patch(t: string, h: Handler, opts: { scopes?: string } = {}) {
    this.route('PATCH', t, opts, h)
  }
  delete(t: string, h: Handler, opts: { scopes?: string } = {}) {
    this.route('DELETE', t, opts, h)
  }
}

/** Extracts the token from `Authorization: token X`, `Bearer X` or Basic (password, else username). */
export function tokenFromAuthorization(header: string | undefined): string | null | undefined {
  if (!header) return undefined
  const [scheme = '', ...rest] = header.trim().split(/\s+/)
  const value = rest.join(' ')
  const s = scheme.toLowerCase()
  if ((s === 'token' || s === 'bearer') && value) return value
  if (s === 'basic' && value) {
    const decoded = Buffer.from(value, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    const user = colon === -1 ? decoded : decoded.slice(0, colon)
    const pass = colon === -1 ? '' : decoded.slice(colon + 1)
    return pass || user || null
  }
  return null
}

/** Resolves a token to its record if it is known, not revoked and not expired. */
export function lookupToken(ctx: SimContext, token: string) {
  const rec = ctx.world.tokens.get(token)
  if (!rec || rec.revoked) return null
  if (rec.expiresAt && Date.parse(rec.expiresAt) <= Date.now()) return null
  return rec
}

function bucketFor(ctx: SimContext, key: string, anonymous: boolean): Bucket {
  const now = Math.floor(Date.now() / 1000)
  let b = ctx.buckets.get(key)
  if (b && b.reset <= now) b = undefined
  if (!b) {
    const d = ctx.rateDefaults
    const limit = anonymous ? ctx.anonymousLimit : d.limit
    b = {
      limit,
      remaining: anonymous ? limit : Math.min(d.remaining ?? limit, limit),
      reset: d.resetAt && !anonymous ? Math.floor(d.resetAt.getTime() / 1000) : now + 3600,
    }
    ctx.buckets.set(key, b)
  }
  return b
}

/** Formats a token expiry like GitHub: `2024-01-01 00:00:00 UTC`. */
function githubDate(iso: string): string {
  return `${new Date(iso).toISOString().slice(0, 19).replace('T', ' ')} UTC`
}

/** Installs the hooks shared by every route: auth, faults, rate limits, ETags, headers and the ledger. */
export function installApiHooks(app: FastifyInstance, ctx: SimContext): void {
  app.decorateRequest('sim', null as unknown as RequestState)

  app.addHook('onRequest', async (req) => {
    const url = req.url
    const kind =
      url.startsWith(`${API_PREFIX}/`) || url === API_PREFIX
        ? 'api'
        : url.startsWith('/login/')
          ? 'oauth'
          : 'git'
    const config = req.routeOptions.config
    req.sim = {
      kind,
      route: config.route ?? 'UNMATCHED',
      login: null,
      token: null,
      counted: false,
      conditional:
        req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined,
      bucketKey: null,
    }
    if (ctx.latencyMs > 0) await new Promise((r) => setTimeout(r, ctx.latencyMs))
    if (kind !== 'api') return

    // Rate-limit headers go on every answer, failed authentication included (charged to nobody).
    req.sim.bucketKey = `ip:${req.ip}`
    const token = tokenFromAuthorization(req.headers.authorization)
    // A GitHub App authenticates as itself with a JWT (see apps.routes.ts); it has its own bucket.
    let appKey: string | null = null
    if (token && looksLikeJwt(token)) appKey = `app:${authenticateAppJwt(ctx, req, token).id}`
    else if (token !== undefined && config.clientAuth !== true) {
      const rec = token ? lookupToken(ctx, token) : null
      if (!rec)
        throw new ApiError(401, 'Bad credentials', { documentation_url: 'https://docs.github.com/rest' })
      req.sim.token = rec
      req.sim.login = rec.login
    }
    const anonymous = !req.sim.login && !appKey
    const key = appKey ?? (anonymous ? `ip:${req.ip}` : `user:${req.sim.login!.toLowerCase()}`)
    req.sim.bucketKey = key

    const path = url.split('?')[0] ?? url
    const apiPath = path.slice(API_PREFIX.length) || '/'
    const fault = ctx.faults.find(
      (f) =>
        f.remaining > 0 &&
        (!f.method || f.method.toUpperCase() === req.method) &&
        (!f.path ||
          (typeof f.path === 'string' ? apiPath === f.path || path === f.path : f.path.test(apiPath))),
    )
    if (fault) {
      fault.remaining--
      const headers: Record<string, string> = { ...fault.headers }
      if (fault.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter)
      const secondary = (fault.status === 403 || fault.status === 429) && fault.message === undefined
      const message =
        fault.message ??
        (secondary
          ? 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.'
          : fault.status >= 500
            ? 'Server Error'
            : 'Injected fault')
      throw new ApiError(
        fault.status,
        message,
        { documentation_url: secondary ? RATE_DOCS : 'https://docs.github.com/rest' },
        headers,
      )
    }

    if (config.counted === false) return
    const bucket = bucketFor(ctx, key, anonymous)
    if (bucket.remaining <= 0) {
      const who = anonymous
        ? `${req.ip}. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)`
        : `user ID ${ctx.world.user(req.sim.login!)?.id}.`
      throw new ApiError(403, `API rate limit exceeded for ${who}`, {
        documentation_url: 'https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting',
      })
    }
    req.sim.counted = true
  })

  app.addHook('onSend', async (req, reply, payload) => {
    const sim = req.sim
    if (sim?.kind !== 'api') return payload
    let out = payload
    if (
      req.method === 'GET' &&
      reply.statusCode === 200 &&
      (typeof payload === 'string' || Buffer.isBuffer(payload))
    ) {
      const etag = `W/"${createHash('sha256').update(payload).digest('hex').slice(0, 40)}"`
      reply.header('etag', etag)
      const inm = req.headers['if-none-match']
      if (inm?.split(',').some((t) => t.trim() === etag || t.trim() === etag.slice(2) || t.trim() === '*')) {
        reply.code(304)
        reply.removeHeader('content-type')
        reply.removeHeader('content-length')
        out = ''
      }
    }
    const status = reply.statusCode
    // GitHub does not charge 304s, failed authentication, rate-limited or (here) injected-fault answers.
    if (sim.counted && (status === 304 || status === 401)) sim.counted = false
    if (sim.bucketKey) {
      const bucket = bucketFor(ctx, sim.bucketKey, !sim.login)
      if (sim.counted) bucket.remaining = Math.max(0, bucket.remaining - 1)
      reply.header('x-ratelimit-limit', String(bucket.limit))
      reply.header('x-ratelimit-remaining', String(bucket.remaining))
      reply.header('x-ratelimit-used', String(bucket.limit - bucket.remaining))
      reply.header('x-ratelimit-reset', String(bucket.reset))
      reply.header('x-ratelimit-resource', 'core')
    }
    if (sim.token) {
      // GitHub lists scopes for OAuth-scoped tokens only: fine-grained PATs and app tokens get no header.
      if (sim.token.kind !== 'fine-grained' && sim.token.kind !== 'app')
        reply.header('x-oauth-scopes', sim.token.scopes.join(', '))
      if (sim.token.expiresAt)
        reply.header('github-authentication-token-expiration', githubDate(sim.token.expiresAt))
    }
    if (!reply.hasHeader('x-accepted-oauth-scopes'))
      reply.header('x-accepted-oauth-scopes', req.routeOptions.config.acceptedScopes ?? '')
    reply.header('x-github-media-type', 'github.v3; format=json')
    reply.header('x-github-api-version-selected', '2022-11-28')
    reply.header('x-github-request-id', randomBytes(8).toString('hex').toUpperCase())
    reply.header('x-github-enterprise-version', '3.17.0')
    reply.header(
      'cache-control',
      sim.login ? 'private, max-age=60, s-maxage=60' : 'public, max-age=60, s-maxage=60',
    )
    reply.header('vary', 'Accept, Authorization, Cookie, X-GitHub-OTP')
    reply.header(
      'access-control-expose-headers',
      'ETag, Link, Location, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Used, X-RateLimit-Resource, X-RateLimit-Reset, X-OAuth-Scopes, X-Accepted-OAuth-Scopes, X-Poll-Interval, X-GitHub-Media-Type, X-GitHub-SSO, X-GitHub-Request-Id, Deprecation, Sunset',
    )
    return out
  })

  app.addHook('onResponse', async (req, reply) => {
    const sim = req.sim
    if (!sim) return
    ctx.ledger.record({
      at: new Date().toISOString(),
      method: req.method,
      path: req.url.split('?')[0] ?? req.url,
      route: sim.route,
      status: reply.statusCode,
      login: sim.login,
      conditional: sim.conditional,
      counted: sim.counted,
      kind: sim.kind,
    })
  })

  app.setErrorHandler(async (err, req, reply) => {
    if (err instanceof ApiError) {
      reply.headers(err.headers)
      return reply.code(err.status).send({ message: err.message, ...err.extra, status: String(err.status) })
    }
    const e = err as { statusCode?: number; code?: string; message: string }
    if (
      e.statusCode === 400 ||
      e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
      e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY'
    ) {
      return reply.code(400).send({
        message: 'Problems parsing JSON',
        documentation_url: 'https://docs.github.com/rest',
        status: '400',
      })
    }
    if (e.statusCode === 415) {
      return reply.code(415).send({
        message: 'Unsupported Media Type',
        documentation_url: 'https://docs.github.com/rest',
        status: '415',
      })
    }
    req.log.error(err)
    ctx.warn(`internal error on ${req.method} ${req.url}: ${e.message}`)
    return reply.code(500).send({ message: 'Server Error', status: '500' })
  })

  app.setNotFoundHandler(async (req, reply) => {
    const sim = req.sim
    if (sim?.kind === 'api') {
      ctx.warn(
        `unsimulated route: ${req.method} ${req.url.split('?')[0]} -> 404 (add it to @portico/github-sim if Portico needs it)`,
      )
      return reply
        .code(404)
        .send({ message: 'Not Found', documentation_url: 'https://docs.github.com/rest', status: '404' })
    }
    if (sim) ctx.warn(`unsimulated web route: ${req.method} ${req.url.split('?')[0]} -> 404`)
    return reply.code(404).type('text/plain; charset=utf-8').send('Not Found')
  })
}
