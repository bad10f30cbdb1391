import { hostname } from 'node:os'
import { type DestinationStream, destination } from 'pino'
import { logLinesDropped } from './metrics.js'
import { redactSecrets } from './tokens.js'
import { visibleText } from './visible-text.js'

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
 * pino options shared by the API and the worker: the level, path-based redaction, a last-resort
 * scrub of token-looking strings inside error messages and stacks, and the same fields on every
 * line of both processes: `process` (`api` or `worker`; absent when not given), `pid`, `hostname`.
 */
export function loggerOptions(level: string, processName?: 'api' | 'worker') {
  return {
    level,
    base: { ...(processName ? { process: processName } : {}), pid: process.pid, hostname: hostname() },
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    serializers: {
      req: (req: LoggedRequest) => ({
        method: req.method,
        // Both come as the client sent them (a raw byte 0x85 is NEL): escaped, see visibleText.
        url: visibleText(redactUrl(String(req.url ?? ''))),
        host: visibleText(String(req.host ?? req.headers?.host ?? '')),
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
    contentMode: 'buffer',
  })
  // In its default (UTF-8 string) mode sonic-boom appends each line to the pending chunk and
  // measures the whole chunk's byte length on every line (sonic-boom 4.2 and 5.0), which copies
  // the chunk each time: about 4.5 µs of a cached read's 90 µs at 64 KB chunks. In buffer mode it
  // keeps each line's bytes and their lengths, and joins them once per write. pino writes
  // strings, so each line is encoded here; pino's own EPIPE handling still replaces `write`.
  const writeBuffer = stream.write.bind(stream) as unknown as (data: Buffer) => boolean
  stream.write = (line: string) => writeBuffer(Buffer.from(line))
  stream.on('drop', () => logLinesDropped.inc())
  return stream
}

/** How long {@link flushLogs} waits for the log reader at exit before dropping what is left. */
export const LOG_FLUSH_TIMEOUT_MS = 2000

/**
 * Waits until every queued line of `stream` (a {@link logDestination}) is written, for at most
 * `timeoutMs` milliseconds; call it last before `process.exit()`. Resolves `true` once written,
 * `false` when the reader did not read in time: the lines left are then dropped, so that pino's
 * own exit-time flush, which retries a full pipe forever, has nothing to write and the process
 * exits. Never rejects.
 */
export function flushLogs(stream: DestinationStream, timeoutMs = LOG_FLUSH_TIMEOUT_MS): Promise<boolean> {
  // sonic-boom's `flush(cb)` calls back at once when `minLength` is 0 (ours), so the test is its
  // own state: `_len` bytes are queued or being written until it emits 'drain' (no public getter).
  const boom = stream as DestinationStream & SonicBoomState
  if (!(boom._len > 0)) return Promise.resolve(true)
  return new Promise((resolve) => {
    const drained = () => {
      if (boom._len > 0) return
      boom.off('drain', drained)
      clearTimeout(timer)
      resolve(true)
    }
    const timer = setTimeout(() => {
      boom.off('drain', drained)
      try {
        boom.destroy()
      } catch {}
      resolve(false)
    }, timeoutMs)
    boom.on('drain', drained)
  })
}

/**
 * Drops the log lines still queued on `stream`, at once: for exits that cannot wait (a second
 * signal, a shutdown past its deadline). pino's exit-time flush then has nothing to write, so a
 * stalled log reader cannot keep the process from exiting; the lines are lost.
 */
export function abandonLogs(stream: DestinationStream): void {
  try {
    ;(stream as DestinationStream & SonicBoomState).destroy()
  } catch {}
}

/** The parts of sonic-boom (pino's destination) that {@link flushLogs} reads. */
interface SonicBoomState {
  /** Bytes queued or being written. */
  _len: number
  on(event: 'drain', listener: () => void): unknown
  off(event: 'drain', listener: () => void): unknown
  destroy(): void
}
