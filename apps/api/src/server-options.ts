import { randomUUID } from 'node:crypto'
import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import AjvCompiler from '@fastify/ajv-compiler'
import { type Config, loggerOptions } from '@portico/core'
import {
  type FastifyBaseLogger,
  type FastifyHttpOptions,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
} from 'fastify'
import { levels } from 'pino'
import { frameworkErrors } from './plugins/app/errors.js'
import { answerOnSocket } from './plugins/app/request-target.js'

/** A client-chosen request id must look like one: bounded, no spaces, quotes or control bytes. */
const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/

/**
 * The request id generator: a random UUID, or the `x-request-id` a trusted proxy sent (only when
 * `TRUST_PROXY` is set, and only an id of at most 128 safe characters). A client reaching the API
 * directly cannot choose the id its requests are logged under.
 */
export function requestIdGenerator(config: Pick<Config, 'trustProxy'>) {
  const trust = config.trustProxy
  const trusted = trust !== false && trust !== 0 && !(Array.isArray(trust) && trust.length === 0)
  return (req: IncomingMessage): string => {
    const given = req.headers['x-request-id']
    if (trusted && typeof given === 'string' && REQUEST_ID.test(given)) return given
    return randomUUID()
  }
}

/**
 * One log line per request, when it ends: `request completed` (or `request errored`) with the
 * request id, the request (method, redacted URL, host, client address), `res.statusCode` and
 * `responseTime` (ms). Fastify's default also writes `incoming request` as each one arrives, which
 * doubled the logging cost of every read for nothing a reader needs: a request that never ends is
 * still reported by its error or timeout.
 *
 * The `request completed` line holds only those whitelisted fields (the `req` serializer keeps no
 * header but Host and redacts secret query parameters), so it is written through a child without
 * path redaction: redacting it cost about 10 µs, most of a cached read's logging. Error lines
 * carry arbitrary errors and keep the redacting logger.
 */
export class RequestLogController extends LogController {
  #access: FastifyBaseLogger | undefined

  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (this.isLogDisabled(request)) return
    if (error) {
      reply.log.error(
        { req: request, res: reply, err: error, responseTime: reply.elapsedTime },
        'request errored',
      )
      return
    }
    // A route's own `logLevel` (Fastify's option) above info silences the line, as it would the default one.
    const routeLevel = request.routeOptions.logLevel
    if (routeLevel && (levels.values[routeLevel] ?? Number.POSITIVE_INFINITY) > (levels.values.info ?? 30))
      return
    this.#access ??= request.server.log.child({}, { redact: [] } as Parameters<FastifyBaseLogger['child']>[1])
    this.#access.info(
      { reqId: request.id, req: request, res: reply, responseTime: reply.elapsedTime },
      'request completed',
    )
  }
}

type LogArgs = Parameters<FastifyBaseLogger['info']>
const MAKE = Symbol('make the logger')
const LOGGER = Symbol('the logger, once made')

/**
 * A request's logger (`request.log`), made on first use: most requests log nothing but their
 * `request completed` line, which {@link RequestLogController} writes through its own child, and
 * a pino child made for every request (its bindings serialized and redacted at once) cost about
 * 1.5 µs of a cached read. Same bindings and options as Fastify's default factory. Its state is
 * in symbol-keyed properties, not private fields, so an object derived from it
 * (`Object.create(request.log)`, a common way to wrap a logger) still works.
 */
export class LazyRequestLogger implements FastifyBaseLogger {
  [LOGGER]: FastifyBaseLogger | undefined
  readonly [MAKE]: () => FastifyBaseLogger

  constructor(make: () => FastifyBaseLogger) {
    this[MAKE] = make
  }

  get level() {
    return made(this).level
  }
  set level(level: string) {
    made(this).level = level
  }
  fatal(...args: LogArgs) {
    made(this).fatal(...args)
  }
  error(...args: LogArgs) {
    made(this).error(...args)
  }
  warn(...args: LogArgs) {
    made(this).warn(...args)
  }
  info(...args: LogArgs) {
    made(this).info(...args)
  }
  debug(...args: LogArgs) {
    made(this).debug(...args)
  }
  trace(...args: LogArgs) {
    made(this).trace(...args)
  }
  silent(...args: LogArgs) {
    made(this).silent(...args)
  }
  child(...args: Parameters<FastifyBaseLogger['child']>) {
    return made(this).child(...args)
  }
}

function made(lazy: LazyRequestLogger): FastifyBaseLogger {
  lazy[LOGGER] ??= lazy[MAKE]()
  return lazy[LOGGER]
}

/**
 * The origin-form (`/path?query`) of an absolute-form request target (`GET http://host/path`,
 * which HTTP/1.1 servers must accept: RFC 9112 §3.2.2), so routing, the session cookie's path
 * check and everything after see the same path; other targets are left as they are.
 */
export function originForm(url: string): string {
  if (url.startsWith('/')) return url
  try {
    const parsed = new URL(url)
    return parsed.protocol === 'http:' || parsed.protocol === 'https:'
      ? `${parsed.pathname}${parsed.search}`
      : url
  } catch {
    return url
  }
}

/** Answers to requests Node's HTTP parser refuses before Fastify sees them. */
const CLIENT_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: {
    status: 408,
    code: 'REQUEST_TIMEOUT',
    message: 'The request took too long to arrive.',
  },
  HPE_HEADER_OVERFLOW: {
    status: 431,
    code: 'HEADERS_TOO_LARGE',
    message: 'The request line or headers are too large.',
  },
}
const MALFORMED = { status: 400, code: 'MALFORMED_REQUEST', message: 'The request is not valid HTTP.' }

/**
 * Fastify's `clientErrorHandler`: Fastify's default, with the common error body (`{ statusCode,
 * code, error, message }`) instead of its own `{"message":"Client Error"}`. The connection is
 * closed after the answer, as Node does.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  // A reset connection has nobody to answer (https://nodejs.org/api/http.html#event-clienterror).
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const { status, code, message } = (err.code && CLIENT_ERRORS[err.code]) || MALFORMED
  answerOnSocket(socket, status, code, message)
  socket.destroy(err)
}

/**
 * Fastify's Ajv validators, one per kind of input: the querystring, params and headers arrive as
 * text, so their values are coerced to the schema's types (`?limit=5`, a repeated `?role=`); a
 * JSON body already has types, so it is validated as sent: `{"role":["member"]}` or `{"name":5}`
 * is a 400, not a string the client never sent. `options` are the server's `ajv` option.
 */
export function validatorByPart(): AjvCompiler.ValidatorFactory {
  // One pool of each per server, as Fastify's default: every plugin scope reuses its compilers.
  const coercingPool = AjvCompiler()
  const asSentPool = AjvCompiler()
  return (externalSchemas, options) => {
    // Text coerced to a number can be non-finite (`?limit=Infinity`, `1e400`). With Ajv's
    // default `strictNumbers` the coerced value skips the type's finiteness check and every
    // bound (Postgres then refused it: a 500, found by an outside review); without it the
    // bounds apply, and every number a query or path takes is bounded. Bodies keep the default:
    // JSON's `1e400` is refused by its type.
    const coercing = coercingPool(externalSchemas, {
      ...options,
      mode: undefined,
      customOptions: { ...(options?.customOptions as AjvCompiler.Options), strictNumbers: false },
    })
    const asSent = asSentPool(externalSchemas, {
      ...options,
      mode: undefined,
      customOptions: { ...(options?.customOptions as AjvCompiler.Options), coerceTypes: false },
    })
    return (route) => (route.httpPart === 'body' ? asSent : coercing)(route)
  }
}

/** Fastify's own options, shared by the server and the tests' `build` helper. */
export function serverOptions(
  config: Config,
  logger: FastifyServerOptions['logger'] = loggerOptions(config.LOG_LEVEL),
) {
  return {
    logger,
    logController: new RequestLogController(),
    childLoggerFactory: (logger, bindings, options) =>
      new LazyRequestLogger(() => logger.child(bindings, options)),
    // Fastify accepts a hop count at runtime; its types only list the other forms.
    trustProxy: config.trustProxy as boolean | string[],
    // Ids come from genReqId alone, which decides whether the client's header is trusted.
    requestIdHeader: false as const,
    genReqId: requestIdGenerator(config),
    rewriteUrl: (req: IncomingMessage) => originForm(req.url ?? '/'),
    frameworkErrors,
    clientErrorHandler,
    // Node's own refusal of an HTTP/1.1 request without Host is an empty 400; the request-target
    // plugin refuses it with the common body instead.
    http: {
      requireHostHeader: false,
      // Headers count toward the request's time, and the deadlines are checked every second
      // (Node's default is every 30 s), so a stalled body is dropped close to its deadline.
      headersTimeout: config.REQUEST_TIMEOUT_MS,
      connectionsCheckingInterval: 1000,
    },
    // Fastify's default is no limit: a body that never finishes was held in memory forever (an
    // outside review held 531 MB with 20 unfinished webhook bodies). Node answers 408.
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    // Longer path parameters reach the route (its schema bounds them, after the 401 for anonymous
    // callers); beyond this the router refuses with 414 URI_TOO_LONG.
    routerOptions: { maxParamLength: 1024 },
    bodyLimit: 1024 * 1024,
    // Start-up registers many plugins; a loaded machine (CI running two suites) needs more than 10 s.
    pluginTimeout: 60_000,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array' as const, allErrors: false } },
    schemaController: { compilersFactory: { buildValidator: validatorByPart() } },
  } satisfies FastifyHttpOptions<Server>
}
