import helmet from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** Pages whose own UI needs inline scripts and styles: Bull Board and the API reference. */
const RELAXED = ['/admin/queues', '/docs']
const RELAXED_CSP = [
  "default-src 'self'",
  "base-uri 'self'",
  "frame-ancestors 'none'",
  "object-src 'none'",
  "form-action 'self'",
  "script-src 'self' 'unsafe-inline'",
  "style-src 'self' 'unsafe-inline' https:",
  "img-src 'self' data: https:",
  "font-src 'self' data: https:",
  "connect-src 'self'",
].join('; ')

/**
 * Security headers on every response (@fastify/helmet's defaults: a strict content security
 * policy, HSTS, nosniff, frame and referrer policies). The policy is relaxed only under
 * {@link RELAXED}, whose pages run their own inline code.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    await fastify.register(helmet, { global: true })
    fastify.addHook('onSend', async (request, reply) => {
      const url = request.url
      if (RELAXED.some((p) => url === p || url.startsWith(`${p}/`) || url.startsWith(`${p}?`))) {
        reply.header('content-security-policy', RELAXED_CSP)
      }
    })
  },
  { name: 'helmet' },
)
