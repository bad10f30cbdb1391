import { AppError } from '@portico/core'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * Refuses a request target that is not a path: 400 INVALID_URL for `*`, `*auth/login` and the
 * like (absolute-form URLs were already rewritten to their path, see `originForm`). The router
 * matches such a target from its second character, so `GET *` reached the landing page and
 * `GET *auth/login` the sign-in route with no session (a 500); found by an adversarial review.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    fastify.addHook('onRequest', (request, _reply, done) => {
      if (request.raw.url?.startsWith('/')) return done()
      done(new AppError(400, 'INVALID_URL', 'The request target must be a path such as /api/pods.'))
    })
  },
  { name: 'request-target', dependencies: ['request-id'] },
)
