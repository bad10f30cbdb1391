import { createBullBoard } from '@bull-board/api'
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter'
import { FastifyAdapter } from '@bull-board/fastify'
import { errorBody } from '@portico/core'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import Negotiator from 'negotiator'
import { notAuthenticated } from '../../plugins/app/auth.js'

const BASE_PATH = '/admin/queues'
/** The statuses Bull Board's types allow an error handler to answer. */
type BoardStatus = ReturnType<Parameters<FastifyAdapter['setErrorHandler']>[0]>['status']

/**
 * Whether a request is a browser loading the board as a page (a GET or HEAD whose Accept prefers
 * text/html to JSON), which a redirect to sign-in serves; the board's API under `/api/` and any
 * other client are answered 401 instead, which a script can act on.
 */
function isPageNavigation(request: FastifyRequest): boolean {
  if (request.method !== 'GET' && request.method !== 'HEAD') return false
  // The matched route, not the URL as sent: the router decodes `/admin/queues/%61pi/…` to the API.
  if ((request.routeOptions.url ?? request.url.split('?')[0] ?? '').startsWith(`${BASE_PATH}/api/`))
    return false
  // JSON first: a tie (`*/*`, no Accept at all) goes to it, so only a client that asks for HTML
  // at least as much as for JSON is redirected (RFC 9110 §12.5.1 through jshttp's negotiator).
  return new Negotiator(request.raw).mediaType(['application/json', 'text/html']) === 'text/html'
}

/**
 * Bull Board for operators at `/admin/queues`, in its own encapsulated context: anonymous
 * visitors loading a page are sent to sign in, other anonymous requests (its API, scripts) get
 * 401 NOT_AUTHENTICATED, signed-in users who are not operators (OPERATOR_GITHUB_IDS, or the
 * deprecated OPERATOR_LOGINS) get 403.
 */
export default async function adminRoutes(fastify: FastifyInstance) {
  fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    // Answered here, not thrown: Bull Board installs its own error handler for its routes.
    if (!request.user) {
      if (isPageNavigation(request)) return reply.redirect(`/auth/login?returnTo=${BASE_PATH}`, 302)
      const { statusCode, code, message } = notAuthenticated()
      return reply.code(statusCode).send(errorBody(statusCode, code, message))
    }
    if (!fastify.isOperator(request.user)) {
      return reply
        .code(403)
        .send(
          errorBody(403, 'OPERATOR_REQUIRED', 'The queue dashboard is for operators (OPERATOR_GITHUB_IDS).'),
        )
    }
  })

  const serverAdapter = new FastifyAdapter()
  serverAdapter.setBasePath(BASE_PATH)
  createBullBoard({
    queues: Object.values(fastify.queues).map((queue) => new BullMQAdapter(queue)),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'Portico queues' } },
  })
  // Bull Board's own handler answers its API's errors with the raw message, and with the stack
  // when NODE_ENV is development (`npm start`'s default). Its body shape stays (its UI reads
  // `error.key`); a 5xx says nothing of the cause and is logged instead.
  serverAdapter.setErrorHandler((error: Error & { statusCode?: number }) => {
    const status =
      error.statusCode && error.statusCode >= 400 && error.statusCode <= 599 ? error.statusCode : 500
    if (status >= 500) fastify.log.error({ err: error }, 'queue dashboard request failed')
    return {
      // Bull Board types only the statuses it answers itself; Fastify's 413 or 415 pass through.
      status: status as BoardStatus,
      body: {
        error: { key: 'ERRORS.INTERNAL_SERVER_ERROR' },
        message: status >= 500 ? 'An internal error occurred. Try again later.' : error.message,
      },
    }
  })
  await fastify.register(serverAdapter.registerPlugin() as never, { prefix: '/queues' })
}
