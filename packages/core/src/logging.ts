import { redactSecrets } from './tokens.js'

/** Paths pino censors in every log line of both processes. */
export const REDACT_PATHS = [
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
]

/**
 * pino options shared by the API and the worker: the level, path-based redaction, and a
 * last-resort scrub of token-looking strings inside error messages and stacks.
 */
export function loggerOptions(level: string) {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    serializers: { err: (err: unknown) => serializeError(err) },
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
