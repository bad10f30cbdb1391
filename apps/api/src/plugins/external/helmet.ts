import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import helmet from 'helmet'

/**
 * Pages whose own UI needs inline scripts and styles: Bull Board and the API reference. Nothing
 * else is loosened, and nothing is loaded from another origin: Bull Board's page links Google
 * Fonts, which an operator's browser would otherwise fetch (telling Google who opens the board,
 * and failing on a network without the internet); the board falls back to system fonts.
 */
const RELAXED = ['/admin/queues', '/docs']
const RELAXED_CSP = {
  defaultSrc: ["'self'"],
  baseUri: ["'self'"],
  frameAncestors: ["'none'"],
  objectSrc: ["'none'"],
  formAction: ["'self'"],
  scriptSrc: ["'self'", "'unsafe-inline'"],
  styleSrc: ["'self'", "'unsafe-inline'"],
  imgSrc: ["'self'", 'data:'],
  fontSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
}

const isRelaxed = (url: string) =>
  RELAXED.some((p) => url === p || url.startsWith(`${p}/`) || url.startsWith(`${p}?`))

/**
 * The headers helmet's middleware sets on a response, recorded once. With static options (no
 * function directives such as per-request nonces, which Portico does not use) helmet sets the
 * same headers on every response, so each request gets the recorded set through `reply.headers`
 * instead of a chain of a dozen middlewares calling `setHeader` on the raw response (which also
 * pushed Node off its fast path for the rest of the headers: about 5% of a cached read).
 * Throws when helmet does not finish synchronously or fails.
 */
export function helmetHeaders(options?: Parameters<typeof helmet>[0]): Record<string, string> {
  const headers: Record<string, string> = {}
  const res = {
    setHeader(name: string, value: unknown) {
      headers[name.toLowerCase()] = String(value)
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()]
    },
  }
  let finished = false
  helmet(options)({} as IncomingMessage, res as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err
    finished = true
  })
  if (!finished) throw new Error('helmet did not finish synchronously')
  return Object.freeze(headers) as Record<string, string>
}

/**
 * For a site served over plain http (`npm start` on http://localhost): no HSTS and no
 * `upgrade-insecure-requests`, which tell a browser to fetch the page's own files over https;
 * there they fail (Safari applies them even on localhost: helmetjs/helmet#429).
 */
const OVER_HTTP = {
  strictTransportSecurity: false,
  contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } },
} as const

const strictHeaders = new Map<boolean, Record<string, string>>()
/**
 * helmet's default (strict) headers for a site whose PUBLIC_URL is `https:` (`https` true) or
 * not ({@link OVER_HTTP}), recorded once per process.
 */
export function strictSecurityHeaders(https: boolean): Record<string, string> {
  let headers = strictHeaders.get(https)
  if (!headers) {
    headers = helmetHeaders(https ? undefined : OVER_HTTP)
    strictHeaders.set(https, headers)
  }
  return headers
}

/**
 * Security headers on every response (helmet's defaults: a strict content security policy, HSTS
 * on https sites, nosniff, frame and referrer policies). The policy is relaxed only under {@link RELAXED}, whose
 * pages run their own inline code. helmet itself rather than @fastify/helmet: that plugin builds
 * helmet's middleware (parsing the whole policy) again on every request; here helmet runs once
 * per policy ({@link helmetHeaders}). The headers go on the reply, so a route that hijacks it
 * and writes `reply.raw` itself (none does today) must copy them onto the raw response.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    const https = fastify.config.PUBLIC_URL.startsWith('https:')
    const strict = strictSecurityHeaders(https)
    const relaxed = helmetHeaders({
      contentSecurityPolicy: { useDefaults: false, directives: RELAXED_CSP },
      ...(https ? {} : { strictTransportSecurity: false }),
    })
    fastify.addHook('onRequest', (request, reply, done) => {
      reply.headers(isRelaxed(request.url) ? relaxed : strict)
      done()
    })
  },
  { name: 'helmet' },
)
