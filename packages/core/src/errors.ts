import { type ServerResponse, STATUS_CODES } from 'node:http'

/** Options for {@link AppError}. */
export interface AppErrorOptions {
  cause?: unknown
  /** Whether `message` may be shown to clients. Defaults to true below 500, false from 500 up. */
  expose?: boolean
  /** Extra fields merged into the error body (for example a rate-limit reset time). */
  details?: Record<string, unknown>
  /** Response headers the error handler sets (for example `retry-after`). */
  headers?: Record<string, string>
}

/**
 * An error that knows how it is presented over HTTP: a status code, a stable machine-readable
 * code and a human message. Every layer throws these; the API's error handler maps them
 * generically, and the worker uses `statusCode` to tell permanent failures from transient ones.
 */
export class AppError extends Error {
  readonly statusCode: number
  readonly code: string
  readonly expose: boolean
  readonly details: Record<string, unknown> | undefined
  readonly headers: Record<string, string> | undefined

  constructor(statusCode: number, code: string, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'AppError'
    this.statusCode = statusCode
    this.code = code
    this.expose = options.expose ?? statusCode < 500
    this.details = options.details
    this.headers = options.headers
  }
}

/** The JSON body every error response uses. */
export interface ErrorBody {
  statusCode: number
  code: string
  error: string
  message: string
  [extra: string]: unknown
}

/** Reason phrase for a status code ("Not Found"), as Fastify prints it. */
export function reasonPhrase(statusCode: number): string {
  return STATUS_CODES[statusCode] ?? 'Error'
}

/**
 * Builds the error body for an {@link AppError}-like value. `error` carries the same human
 * sentence as `message`: the frontend Portico serves shows `data.error` to people (issue 9), and
 * the reason phrase is implied by `statusCode`.
 */
export function errorBody(
  statusCode: number,
  code: string,
  message: string,
  extra?: Record<string, unknown>,
): ErrorBody {
  return { ...extra, statusCode, code, error: message, message }
}

/**
 * Answers `res` with the error body as JSON, for the bare `node:http` listeners beside Fastify
 * (the API's METRICS_PORT listener, the worker's health listener). `headers` go first, so the
 * content type is always JSON.
 */
export function sendErrorBody(
  res: ServerResponse,
  statusCode: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  res
    .writeHead(statusCode, { ...headers, 'content-type': 'application/json; charset=utf-8' })
    .end(JSON.stringify(errorBody(statusCode, code, message)))
}

/** Narrows an unknown thrown value to something carrying an HTTP status and a code. */
export function isAppError(value: unknown): value is AppError {
  return value instanceof AppError
}
