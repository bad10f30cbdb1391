import { classifyGithubError, githubAnswerOf, truncateMessage } from '@portico/core'

/** GitHub's own error message (`{ message, errors }` body), redacted and bounded to 200 characters. */
export function githubMessage(err: unknown): string {
  return truncateMessage(classifyGithubError(err).message || githubAnswerOf(err).message, 200)
}

/**
 * When GitHub asks the caller to wait (primary or secondary rate limit: 403/429 with
 * `retry-after`, an exhausted `x-ratelimit-remaining`, or a rate-limit message), the epoch
 * milliseconds it may call again; otherwise undefined. See `classifyGithubAnswer` in @portico/core.
 */
export function rateLimitResetAt(err: unknown, now = Date.now()): number | undefined {
  const refusal = classifyGithubError(err, now)
  return refusal.kind === 'rate_limited' ? refusal.resetAt : undefined
}
