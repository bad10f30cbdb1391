import { AppError, isAppError, redactSecrets, truncateMessage } from '@portico/core'

interface OctokitErrorLike {
  status?: unknown
  message?: unknown
  response?: { headers?: Record<string, string | number | undefined>; data?: unknown }
}

/** HTTP status of an Octokit error, or undefined for network failures and timeouts. */
export function statusOf(err: unknown): number | undefined {
  const status = (err as OctokitErrorLike | null)?.status
  return typeof status === 'number' ? status : undefined
}

/** GitHub's own error message (`{ message, errors }` body), redacted and bounded. */
export function githubMessage(err: unknown): string {
  const e = err as OctokitErrorLike | null
  const data = e?.response?.data as { message?: unknown; errors?: unknown } | undefined
  let raw = typeof data?.message === 'string' ? data.message : String(e?.message ?? '')
  // "Validation Failed" details live in `errors[].message` (e.g. "A pull request already exists").
  if (Array.isArray(data?.errors)) {
    const details = data.errors
      .map((x) => (typeof x === 'string' ? x : (x as { message?: unknown })?.message))
      .filter((m): m is string => typeof m === 'string')
    if (details.length > 0) raw = `${raw}: ${details.join('; ')}`
  }
  return truncateMessage(redactSecrets(raw), 200)
}

/**
 * When GitHub asks the caller to wait (403/429 with `retry-after`, or an exhausted rate limit),
 * the epoch milliseconds it may call again; otherwise undefined.
 */
export function rateLimitResetAt(err: unknown, now = Date.now()): number | undefined {
  const status = statusOf(err)
  if (status !== 403 && status !== 429) return undefined
  const headers = (err as OctokitErrorLike).response?.headers ?? {}
  const retryAfter = Number(headers['retry-after'])
  if (Number.isFinite(retryAfter) && retryAfter >= 0 && headers['retry-after'] !== undefined) {
    return now + retryAfter * 1000
  }
  if (String(headers['x-ratelimit-remaining']) === '0') {
    const reset = Number(headers['x-ratelimit-reset'])
    return Number.isFinite(reset) && reset > 0 ? reset * 1000 : now + 60_000
  }
  if (status === 429 || /rate limit/i.test(githubMessage(err))) return now + 60_000
  return undefined
}

/**
 * Maps a GitHub failure to the error a client sees: rate limits → 503 `GITHUB_RATE_LIMITED`
 * (with `reset_at` and `retry-after`), unreachable or 5xx → 503 `GITHUB_UNAVAILABLE`, 401 →
 * 401 `GITHUB_UNAUTHORIZED`, 403 → 403 `GITHUB_FORBIDDEN`, 404 → `notFound()`; anything else
 * → 502 `GITHUB_ERROR`. AppErrors (e.g. the session's TOKEN_EXPIRED) pass through unchanged.
 */
export function toGithubAppError(err: unknown, notFound?: () => AppError): AppError {
  if (isAppError(err)) return err
  const status = statusOf(err)
  const resetAt = rateLimitResetAt(err)
  if (resetAt !== undefined) {
    const seconds = Math.max(1, Math.ceil((resetAt - Date.now()) / 1000))
    return new AppError(
      503,
      'GITHUB_RATE_LIMITED',
      `GitHub rate limit reached. Try again after ${new Date(resetAt).toISOString()}.`,
      {
        cause: err,
        expose: true,
        details: { reset_at: new Date(resetAt).toISOString() },
        headers: { 'retry-after': String(seconds) },
      },
    )
  }
  if (status === undefined || status >= 500) {
    return new AppError(503, 'GITHUB_UNAVAILABLE', 'GitHub is unavailable. Try again shortly.', {
      cause: err,
      expose: true,
    })
  }
  if (status === 401) {
    return new AppError(401, 'GITHUB_UNAUTHORIZED', 'GitHub rejected the credentials. Sign in again.', {
      cause: err,
    })
  }
  if (status === 403) {
    return new AppError(403, 'GITHUB_FORBIDDEN', `GitHub denied the request: ${githubMessage(err)}`, {
      cause: err,
    })
  }
  if (status === 404 && notFound) return notFound()
  if (status === 404) return new AppError(404, 'GITHUB_NOT_FOUND', 'Not found on GitHub', { cause: err })
  return new AppError(502, 'GITHUB_ERROR', `GitHub rejected the request: ${githubMessage(err)}`, {
    cause: err,
    expose: true,
  })
}
