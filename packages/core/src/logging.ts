import { type DestinationStream, destination } from 'pino'
import { logLinesDropped } from './metrics.js'
import { redactSecrets } from './tokens.js'

/** Paths pino censors in every log line of both processes. */
export const REDACT_PATHS = [
  // Top level (`log.info({ token })`) and one level down (`log.info({ connection })`).
  'token',
  'pat',
  'accessToken',
  'access_token',
  'encrypted_token',
  'encryptedToken',
  'password',
  'secret',
  'client_secret',
  'privateKey',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-github-token"]',
  'res.headers["set-cookie"]',
  '*.token',
  '*.pat',
  '*.accessToken',
  '*.access_token',
  '*.encrypted_token',
  '*.encryptedToken',
  '*.password',
  '*.secret',
  '*.client_secret',
  'headers.authorization',
  'config.SESSION_SECRET',
  'config.TOKEN_ENCRYPTION_KEYS',
  'config.GH_TOKEN',
  'config.METRICS_TOKEN',
  'config.GITHUB_OAUTH_CLIENT_SECRET',
  'config.GITHUB_APP_PRIVATE_KEY',
  'config.githubApp.privateKey',
  '*.privateKey',
]

/** Query parameters whose values never reach a log line (OAuth codes and states, tokens). */
const SECRET_QUERY_PARAMS = new Set([
  'code',
  'state',
  'access_token',
  'token',
  'client_secret',
  'code_verifier',
])

/**
 * A request URL for the logs: the values of {@link SECRET_QUERY_PARAMS} are replaced by
 * `[REDACTED]`; the path and other parameters are kept as sent.
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?')
  if (q < 0) return url
  const query = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=')
      const rawName = eq < 0 ? pair : pair.slice(0, eq)
      let name = rawName
      try {
        name = decodeURIComponent(rawName.replace(/\+/g, ' '))
      } catch {}
      return SECRET_QUERY_PARAMS.has(name.toLowerCase()) ? `${rawName}=[REDACTED]` : pair
    })
    .join('&')
  return `${url.slice(0, q)}?${query}`
}

/** What a request log line says about the request (Fastify's default fields, URL redacted). */
interface LoggedRequest {
  method?: string
  url?: string
  host?: string
  ip?: string
  headers?: { host?: string }
  socket?: { remotePort?: number }
}

/**
 * pino options shared by the API and the worker: the level, path-based redaction, and a
 * last-resort scrub of token-looking strings inside error messages and stacks.
 */
export function loggerOptions(level: string) {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    serializers: {
      req: (req: LoggedRequest) => ({
        method: req.method,
        url: redactUrl(String(req.url ?? '')),
        host: req.host ?? req.headers?.host,
        remoteAddress: req.ip,
        remotePort: req.socket?.remotePort,
      }),
      err: (err: unknown) => serializeError(err),
    },
  }
}

type LoggedError = Error & { code?: unknown; statusCode?: unknown; status?: unknown }

/**
 * pino's `errWithCause` shape (`type, message, stack, code`, and the `cause` chain, up to 4
 * deep) with only these fields kept and every string scrubbed of token-looking values, so an
 * Octokit error's request/response bodies never reach the logs while the cause does.
 */
export interface SerializedError {
  type: string
  message: string
  stack: string
  [key: string]: unknown
}

export function serializeError(err: unknown, depth = 0): SerializedError {
  const e = err as LoggedError | null
  if (!(e instanceof Error)) return { type: typeof err, message: redactSecrets(String(err)), stack: '' }
  const out: SerializedError = {
    type: String(e.name ?? 'Error'),
    message: redactSecrets(String(e.message ?? e)),
    stack: redactSecrets(String(e.stack ?? '')),
    code: e.code,
    statusCode: e.statusCode ?? (typeof e.status === 'number' ? e.status : undefined),
  }
  if (e.cause !== undefined && depth < 4) out.cause = serializeError(e.cause, depth + 1)
  return out
}

/** Most bytes of log lines one write to stdout carries (sonic-boom's default is 16 KB). */
export const LOG_WRITE_BYTES = 64 * 1024
/** Most bytes of log lines waiting for stdout; lines beyond it are dropped and counted. */
export const LOG_QUEUE_BYTES = 16 * 1024 * 1024

/**
 * The stdout destination both processes log to: pino's asynchronous sonic-boom, writing whatever
 * has queued (up to {@link LOG_WRITE_BYTES}) in each write, holding at most `maxQueueBytes`
 * (default {@link LOG_QUEUE_BYTES}); a line that would exceed it is dropped and counted in
 * `portico_log_lines_dropped_total`. pino flushes the queue when the process exits.
 *
 * Why not pino's default: it writes 16 KB per trip through the event loop, and a busy loop makes
 * few trips, so lines queued faster than they left (32 MB after 30 s at 100 connections in
 * `npm run bench`), and without bound behind a stalled log reader. Blocking writes are no answer:
 * a stalled reader would stop the process (lock renewals, health checks), and stdout is often a
 * non-blocking pipe (the worker's analysis threads share it), where sonic-boom's synchronous mode
 * sleeps 100 ms per retry (docs/performance.md, "Memory").
 */
export function logDestination(maxQueueBytes = LOG_QUEUE_BYTES): DestinationStream {
  const stream = destination({
    dest: 1,
    sync: false,
    maxWrite: LOG_WRITE_BYTES,
    maxLength: maxQueueBytes,
  })
  stream.on('drop', () => logLinesDropped.inc())
  return stream
}
