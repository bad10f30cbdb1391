import { type ServerResponse, STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { AppError, errorBody } from '@portico/core'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { strictSecurityHeaders } from '../external/helmet.js'

/** How many `Host` fields the request carried (Node keeps the first and drops the others). */
function hostFields(request: FastifyRequest): number {
  const raw = request.raw.rawHeaders
  let count = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length === 4 && name.toLowerCase() === 'host') count++
  }
  return count
}

/**
 * Answers on a raw socket with the common error body and closes it: for refusals made before
 * Fastify has a request (CONNECT here, the HTTP parser's in `clientErrorHandler`).
 */
export function answerOnSocket(socket: Duplex, status: number, code: string, message: string): void {
  if (socket.writable) {
    const body = JSON.stringify(errorBody(status, code, message))
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`,
    )
  }
}

/**
 * `CONNECT host:port` asks for a tunnel; Node answers it only when the server listens for
 * 'connect', and otherwise closes the connection without a word. Portico is not a proxy: 405.
 */
function refuseConnect(_req: unknown, socket: Duplex): void {
  answerOnSocket(socket, 405, 'METHOD_NOT_ALLOWED', 'CONNECT is not supported: Portico is not a proxy.')
  socket.destroy()
}

/**
 * An `Expect` other than `100-continue` is one no route can meet (RFC 9110 §10.1.1: 417). Node
 * answers it with an empty 417 unless the server listens for 'checkExpectation'; this is the
 * same answer with the common body.
 */
function refuseExpectation(res: ServerResponse, securityHeaders: Record<string, string>): void {
  const status = 417
  const body = JSON.stringify(
    errorBody(
      status,
      'EXPECTATION_FAILED',
      'The Expect header asks for something this server does not do; only 100-continue is supported.',
    ),
  )
  res.writeHead(status, {
    ...securityHeaders,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  })
  res.end(body)
}

/**
 * Refuses a request whose target or Host is not one a server may take, with the common body:
 * - 400 INVALID_URL for a target that is not a path: `*`, `*auth/login` and the like
 *   (absolute-form URLs were already rewritten to their path, see `originForm`). The router
 *   matches such a target from its second character, so `GET *` reached the landing page and
 *   `GET *auth/login` the sign-in route with no session (a 500); found by an adversarial review.
 * - 400 INVALID_HOST for an HTTP/1.1 request with no Host, or with more than one (RFC 9112 §3.2:
 *   a server MUST answer both with 400). Node's own check answers the first with an empty body
 *   (`requireHostHeader` is off in server-options.ts) and lets the second through.
 * - 405 METHOD_NOT_ALLOWED for CONNECT, which Node otherwise answers by closing the connection.
 * - 417 EXPECTATION_FAILED for an `Expect` other than 100-continue, which Node answers empty.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    fastify.server.on('connect', refuseConnect)
    const securityHeaders = strictSecurityHeaders(fastify.config.PUBLIC_URL.startsWith('https:'))
    fastify.server.on('checkExpectation', (_req, res: ServerResponse) =>
      refuseExpectation(res, securityHeaders),
    )
    fastify.addHook('onRequest', (request, _reply, done) => {
      if (!request.raw.url?.startsWith('/')) {
        return done(new AppError(400, 'INVALID_URL', 'The request target must be a path such as /api/pods.'))
      }
      const hosts = hostFields(request)
      if (hosts > 1)
        return done(new AppError(400, 'INVALID_HOST', 'A request must carry one Host header, not several.'))
      if (hosts === 0 && request.raw.httpVersion === '1.1') {
        return done(new AppError(400, 'INVALID_HOST', 'An HTTP/1.1 request must carry a Host header.'))
      }
      done()
    })
  },
  { name: 'request-target', dependencies: ['request-id'] },
)
