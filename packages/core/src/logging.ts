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
    serializers: {
      err: (err: Error & { code?: unknown; statusCode?: unknown }) => ({
        type: String(err?.name ?? 'Error'),
        message: redactSecrets(String(err?.message ?? err)),
        stack: redactSecrets(String(err?.stack ?? '')),
        code: err?.code,
        statusCode: err?.statusCode,
      }),
    },
  }
}
