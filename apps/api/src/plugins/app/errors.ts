import { AppError, errorBody, reasonPhrase, visibleText } from '@portico/core'
import { isTransactionConflict } from '@portico/db'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { type ValidationEntry, validationMessage } from '../../schemas/validation-message.js'
import { strictSecurityHeaders } from '../external/helmet.js'

interface HttpErrorLike {
  statusCode?: unknown
  status?: unknown
  code?: unknown
  message?: unknown
  expose?: unknown
  details?: unknown
  headers?: unknown
  validation?: ValidationEntry[]
  validationContext?: string
}

/** A stable code for a status, when the error did not bring one. */
const DEFAULT_CODES: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'NOT_AUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  422: 'UNPROCESSABLE_ENTITY',
  429: 'TOO_MANY_REQUESTS',
  503: 'SERVICE_UNAVAILABLE',
}

/**
 * Fastify's own refusals of a body, which carry a reason phrase for a message: a code and a
 * sentence of ours instead.
 */
const FRAMEWORK_REFUSALS: Record<string, { code: string; message: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: 'UNSUPPORTED_MEDIA_TYPE',
    message: "The request body's content-type is not one this route takes: send JSON as application/json.",
  },
  FST_ERR_CTP_BODY_TOO_LARGE: {
    code: 'PAYLOAD_TOO_LARGE',
    message: 'The request body is larger than this route takes.',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    code: 'MALFORMED_REQUEST',
    message: 'The request body is not as long as its Content-Length says.',
  },
}

/** Foreign keys to `users` (the initial migration's default names). */
const USER_REFERENCE = /_(user_id|created_by|requested_by)_fkey$/
/**
 * A write that names the signed-in user broke a foreign key to `users`: the session outlived its
 * user row (a database restored or recreated while Redis kept the sessions). Signing in again
 * makes the row anew; a second review found this answered 500.
 */
const isUnknownUserReference = (err: unknown) => {
  const e = err as { code?: unknown; constraint?: unknown } | null
  return e?.code === '23503' && typeof e.constraint === 'string' && USER_REFERENCE.test(e.constraint)
}
const unknownUser = () =>
  new AppError(401, 'NOT_AUTHENTICATED', 'Your account is no longer known to Portico. Sign in again.')

/**
 * A transaction Postgres ended for another ({@link isTransactionConflict}): nothing of it was
 * written and the same request again can succeed, so it is a 409 the caller can act on, not a 500.
 */
const concurrentChange = () =>
  new AppError(
    409,
    'CONCURRENT_CHANGE',
    'Another change to the same data was made at the same moment, so nothing was changed. Try again.',
  )

/**
 * Fastify's `frameworkErrors` option (set in server-options.ts): requests the router cannot take
 * (a malformed percent-encoding, a path parameter longer than `maxParamLength`) get the same
 * answer as every other error, through {@link sendError}. They are refused before routing, so
 * before any route's `config.auth`.
 */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const refusal =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new AppError(414, 'URI_TOO_LONG', 'A path segment of this URL is too long.')
      : new AppError(400, 'INVALID_URL', 'The URL is not valid: it holds a malformed percent-encoding.')
  // No hook runs for these: the headers every other answer gets are set here.
  reply
    .headers(strictSecurityHeaders(request.server.config.PUBLIC_URL.startsWith('https:')))
    .header('x-request-id', request.id)
  return sendError(refusal, request, reply)
}

/**
 * Answers `error` with the common body `{ statusCode, code, error, message }`: mapped by the
 * error's own `statusCode` and `code` (Fastify's validation errors are 400 `VALIDATION_ERROR`
 * naming the field); 5xx bodies stay generic, carry the request id and are logged with it.
 */
export function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply) {
  try {
    return answerError(error, request, reply)
  } catch {
    // Answering failed itself (a logger or a header threw): Fastify's fallback would send that
    // failure's message in a 500 body. The caller still gets the generic one.
    if (reply.sent) return reply
    return reply.code(500).send(errorBody(500, 'INTERNAL_ERROR', INTERNAL_MESSAGE, { requestId: request.id }))
  }
}

const INTERNAL_MESSAGE =
  'An internal error occurred. Try again later; the request id identifies it in the logs.'

function answerError(error: unknown, request: FastifyRequest, reply: FastifyReply) {
  const framework = FRAMEWORK_REFUSALS[String((error as HttpErrorLike | null)?.code)]
  const conflict = isTransactionConflict(error)
  // Rare by design (locks are taken in one order): an operator should hear of each one.
  if (conflict) request.log.warn({ err: error }, 'transaction conflict')
  const err = (isUnknownUserReference(error)
    ? unknownUser()
    : conflict
      ? concurrentChange()
      : framework
        ? new AppError((error as HttpErrorLike).statusCode as number, framework.code, framework.message)
        : error) as unknown as HttpErrorLike
  const rawStatus = Number(err.statusCode ?? err.status ?? 500)
  const statusCode = rawStatus >= 400 && rawStatus <= 599 ? rawStatus : 500
  const isValidation = Array.isArray(err.validation)
  if (statusCode >= 500) request.log.error({ err: error }, 'request failed')

  if (err.headers && typeof err.headers === 'object') reply.headers(err.headers as Record<string, string>)
  const appCode =
    typeof err.code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(err.code) && !err.code.startsWith('FST_')
  const code = isValidation
    ? 'VALIDATION_ERROR'
    : appCode
      ? (err.code as string)
      : (DEFAULT_CODES[statusCode] ?? (statusCode >= 500 ? 'INTERNAL_ERROR' : 'BAD_REQUEST'))
  const expose = typeof err.expose === 'boolean' ? err.expose : statusCode < 500
  // Messages may echo what the caller sent (a path parameter, a field name, a charset): escaped
  // where it could break or reorder the line in a log, a terminal or the frontend's toast.
  const message = visibleText(
    isValidation
      ? validationMessage(err, request)
      : expose
        ? String(err.message || reasonPhrase(statusCode))
        : INTERNAL_MESSAGE,
  )
  // What the caller was told, as plain fields (an object under `err` would be serialized as an
  // Error and print "[object Object]").
  if (request.raw.socket?.destroyed) {
    // Nobody is left to answer (REQUEST_TIMEOUT_MS cut a body off and Node sent the 408, or the
    // client hung up), so no "request completed" line follows: this one names the request.
    request.log.info({ req: request, code, reason: message }, 'request aborted')
  } else if (statusCode < 500) {
    request.log.info({ statusCode, code, reason: message }, 'request rejected')
  }
  const details =
    expose && err.details && typeof err.details === 'object' ? (err.details as object) : undefined
  return reply.code(statusCode).send(
    errorBody(statusCode, code, message, {
      ...details,
      ...(statusCode >= 500 ? { requestId: request.id } : {}),
    }),
  )
}

const hasBody = (request: FastifyRequest) =>
  request.headers['transfer-encoding'] !== undefined ||
  (request.headers['content-length'] !== undefined && request.headers['content-length'] !== '0')

/**
 * One error body shape for every failure: `{ statusCode, code, error, message }`. Errors are
 * mapped by their own `statusCode` and `code`; 5xx bodies stay generic and are logged with the
 * request id.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    fastify.setErrorHandler(sendError)

    const notFound = (request: FastifyRequest, reply: FastifyReply) => {
      // A frontend build (STATIC_DIR) answers its own history-mode routes with index.html.
      if (fastify.hasDecorator('spaFallback') && fastify.spaFallback(request, reply)) return reply
      return reply
        .code(404)
        .send(errorBody(404, 'NOT_FOUND', `Route ${request.method} ${request.url.split('?')[0]} not found`))
    }
    fastify.setNotFoundHandler(notFound)
    // Fastify parses a body before its 404 handler runs (up to the 1 MB body limit, for a route
    // that will not use it): an unknown route with a body answers before reading it.
    fastify.addHook('preParsing', async (request, reply) => {
      if (request.is404 && hasBody(request)) return notFound(request, reply)
    })
  },
  { name: 'errors' },
)
