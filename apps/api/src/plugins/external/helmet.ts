import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import helmet from 'helmet'

/** Pages whose own UI needs inline scripts and styles: Bull Board and the API reference. */
const RELAXED = ['/admin/queues', '/docs']
const RELAXED_CSP = {
  defaultSrc: ["'self'"],
  baseUri: ["'self'"],
  frameAncestors: ["'none'"],
  objectSrc: ["'none'"],
  formAction: ["'self'"],
  scriptSrc: ["'self'", "'unsafe-inline'"],
  styleSrc: ["'self'", "'unsafe-inline'", 'https:'],
  imgSrc: ["'self'", 'data:', 'https:'],
  fontSrc: ["'self'", 'data:', 'https:'],
  connectSrc: ["'self'"],
}

const isRelaxed = (url: string) =>
  RELAXED.some((p) => url === p || url.startsWith(`${p}/`) || url.startsWith(`${p}?`))

/**
 * Security headers on every response (helmet's defaults: a strict content security policy, HSTS,
 * nosniff, frame and referrer policies). The policy is relaxed only under {@link RELAXED}, whose
 * pages run their own inline code. helmet itself rather than @fastify/helmet: that plugin builds
 * helmet's middleware (parsing the whole policy) again on every request; here each is built once.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    const strict = helmet()
    const relaxed = helmet({ contentSecurityPolicy: { useDefaults: false, directives: RELAXED_CSP } })
    fastify.addHook('onRequest', (request, reply, done) => {
      const headers = isRelaxed(request.url) ? relaxed : strict
      headers(request.raw, reply.raw, (err?: unknown) => done(err as Error | undefined))
    })
  },
  { name: 'helmet' },
)
