import { AppError, isAppError } from './errors.js'
import { redactSecrets } from './tokens.js'

/**
 * One GitHub answer as the classifier needs it: from an Octokit `RequestError`
 * ({@link githubAnswerOf}) or from a plain `fetch` Response (status, headers, parsed body).
 */
export interface GithubAnswer {
  /** HTTP status; undefined when no answer came (aborted or timed out). */
  status: number | undefined
  /** Response headers, lowercase names. */
  headers: Record<string, string | number | undefined>
  /** GitHub's `message` (with `errors[].message` details), unredacted. */
  message: string
  /** Whether GitHub answered at all (false for network failures Octokit reports as 500). */
  answered: boolean
}

/** Why GitHub refused, by cause. */
export type GithubRefusalKind =
  /** 401: bad, revoked or expired credentials. */
  | 'unauthorized'
  /** Primary (quota spent) or secondary (abuse) rate limit, or the failed-login limit. */
  | 'rate_limited'
  /** The organisation enforces SAML SSO and the token is not authorised for it (`x-github-sso`). */
  | 'sso_required'
  /** The organisation restricts OAuth App access and has not approved this app. */
  | 'oauth_app_restricted'
  /** The organisation's IP allow list does not include the caller. */
  | 'ip_not_allowed'
  /** The organisation forbids this kind of token (classic PATs, or fine-grained PATs of too long a lifetime). */
  | 'token_policy'
  /** The token lacks a permission (fine-grained / GitHub App) or scope (classic / OAuth) the endpoint needs. */
  | 'permission_missing'
  /** A write to an archived repository ("Repository was archived so is read-only."). */
  | 'archived'
  /** A ruleset or classic branch protection refused a ref or commit ("Repository rule violations found"). */
  | 'rule_violation'
  /** Any other 403. */
  | 'forbidden'
  /** 404: absent, or invisible to this token. */
  | 'not_found'
  /** No answer, or a 5xx. */
  | 'unavailable'
  /** Anything else (400, 409, 422…). */
  | 'other'

/** A classified GitHub refusal. */
export interface GithubRefusal {
  kind: GithubRefusalKind
  status: number | undefined
  /** GitHub's message, secrets redacted, at most 300 characters. */
  message: string
  /** rate_limited: epoch ms when GitHub accepts calls again. */
  resetAt?: number
  /** rate_limited: `primary` (quota spent) or `secondary`. */
  limit?: 'primary' | 'secondary'
  /** sso_required: the URL where the token is authorised for the organisation (`x-github-sso`). */
  ssoUrl?: string
  /** permission_missing: `x-accepted-github-permissions`, e.g. `contents=read`. */
  acceptedPermissions?: string
  /** permission_missing: `x-accepted-oauth-scopes`, e.g. `repo`. */
  acceptedScopes?: string
  /** permission_missing: the token's own scopes (`x-oauth-scopes`). */
  tokenScopes?: string
}

interface OctokitErrorLike {
  status?: unknown
  message?: unknown
  response?: { headers?: Record<string, string | number | undefined>; data?: unknown }
}

/**
 * HTTP status of an Octokit error (`RequestError`), or undefined when there is none. Octokit
 * reports network failures as status 500 (with no `response`); an aborted or timed-out request
 * (`AbortError`) and non-Octokit errors have no status.
 */
export function githubErrorStatus(err: unknown): number | undefined {
  const status = (err as OctokitErrorLike | null)?.status
  return typeof status === 'number' ? status : undefined
}

/** GitHub's `{ message, errors }` body as one line: "Validation Failed: A pull request already exists". */
export function githubBodyMessage(data: unknown, fallback = ''): string {
  const body = data as { message?: unknown; errors?: unknown } | null | undefined
  let raw = typeof body?.message === 'string' ? body.message : fallback
  // "Validation Failed" details live in `errors[].message` (e.g. "A pull request already exists").
  if (Array.isArray(body?.errors)) {
    const details = body.errors
      .map((x) => (typeof x === 'string' ? x : (x as { message?: unknown })?.message))
      .filter((m): m is string => typeof m === 'string')
    if (details.length > 0) raw = `${raw}: ${details.join('; ')}`
  }
  return raw
}

/** The {@link GithubAnswer} inside an Octokit `RequestError` (or any thrown value). */
export function githubAnswerOf(err: unknown): GithubAnswer {
  const e = err as OctokitErrorLike | null
  const response = e?.response
  return {
    status: githubErrorStatus(err),
    headers: response?.headers ?? {},
    message: githubBodyMessage(response?.data, String(e?.message ?? '')),
    answered: response !== undefined,
  }
}

/** The {@link GithubAnswer} of a `fetch` Response whose JSON body was read into `body`. */
export function githubAnswerOfResponse(res: Response, body: unknown): GithubAnswer {
  const headers: Record<string, string> = {}
  res.headers.forEach((value, name) => {
    headers[name.toLowerCase()] = value
  })
  return { status: res.status, headers, message: githubBodyMessage(body), answered: true }
}

const header = (answer: GithubAnswer, name: string): string | undefined => {
  const value = answer.headers[name]
  return value === undefined ? undefined : String(value)
}

/** When the caller may call again, epoch ms, for a rate-limited answer; else undefined. */
function rateLimit(answer: GithubAnswer, now: number): Pick<GithubRefusal, 'resetAt' | 'limit'> | undefined {
  const { status } = answer
  if (status !== 403 && status !== 429) return undefined
  const retryAfterRaw = header(answer, 'retry-after')
  const retryAfter = Number(retryAfterRaw)
  const secondary = /secondary rate limit|abuse detection/i.test(answer.message)
  const primaryMessage = /(?:API )?rate limit exceeded|login attempts exceeded/i.test(answer.message)
  const spent = header(answer, 'x-ratelimit-remaining') === '0'
  if (!(retryAfterRaw !== undefined || spent || secondary || primaryMessage || status === 429))
    return undefined
  const limit = secondary || !spent ? 'secondary' : 'primary'
  // Order from GitHub's docs: retry-after first; else x-ratelimit-reset when the quota is spent;
  // else (secondary limits without headers) wait at least a minute.
  if (retryAfterRaw !== undefined && Number.isFinite(retryAfter) && retryAfter >= 0) {
    return { resetAt: now + retryAfter * 1000, limit }
  }
  const reset = Number(header(answer, 'x-ratelimit-reset'))
  if (spent && Number.isFinite(reset) && reset > 0) return { resetAt: Math.max(now, reset * 1000), limit }
  return { resetAt: now + 60_000, limit }
}

/**
 * Classifies a GitHub answer by cause, from its status, headers and message, as GitHub's REST
 * docs describe them ("Rate limits for the REST API", "Troubleshooting the REST API",
 * "Authenticating with SAML single sign-on", "About OAuth App access restrictions", "Managing
 * allowed IP addresses for your organization"). Rate limits win over everything else: a 403
 * "API rate limit exceeded" says nothing about the token.
 */
export function classifyGithubAnswer(answer: GithubAnswer, now = Date.now()): GithubRefusal {
  const message = redactSecrets(answer.message).slice(0, 300)
  const { status } = answer
  const base = { status, message }
  if (status === undefined || !answer.answered || status >= 500) return { kind: 'unavailable', ...base }
  if (status === 401) return { kind: 'unauthorized', ...base }
  const limited = rateLimit(answer, now)
  if (limited) return { kind: 'rate_limited', ...base, ...limited }
  if (status === 404) return { kind: 'not_found', ...base }
  if (
    (status === 403 || status === 409 || status === 422) &&
    /Repository rule violations found|Protected branch update failed|protected branch hook declined/i.test(
      answer.message,
    )
  ) {
    return { kind: 'rule_violation', ...base }
  }
  if (status !== 403) return { kind: 'other', ...base }
  const sso = header(answer, 'x-github-sso')
  if (sso?.startsWith('required') || /SAML enforcement|SAML single sign-on/i.test(answer.message)) {
    const url = /url=(\S+)/.exec(sso ?? '')?.[1]
    return { kind: 'sso_required', ...base, ...(url ? { ssoUrl: url } : {}) }
  }
  if (/OAuth App access restrictions/i.test(answer.message)) return { kind: 'oauth_app_restricted', ...base }
  if (/IP allow list/i.test(answer.message)) return { kind: 'ip_not_allowed', ...base }
  if (
    /forbids access via|personal access tokens? \(classic\)|lifetime is greater than/i.test(answer.message)
  ) {
    return { kind: 'token_policy', ...base }
  }
  if (/archived so is read-only/i.test(answer.message)) return { kind: 'archived', ...base }
  const acceptedPermissions = header(answer, 'x-accepted-github-permissions')
  const acceptedScopes = header(answer, 'x-accepted-oauth-scopes')
  const tokenScopes = header(answer, 'x-oauth-scopes')
  const scopesMissing =
    acceptedScopes !== undefined &&
    acceptedScopes.trim() !== '' &&
    !acceptedScopes
      .split(',')
      .map((s) => s.trim())
      .some((s) =>
        (tokenScopes ?? '')
          .split(',')
          .map((x) => x.trim())
          .includes(s),
      )
  if (acceptedPermissions || scopesMissing || /Resource not accessible by/i.test(answer.message)) {
    return {
      kind: 'permission_missing',
      ...base,
      ...(acceptedPermissions ? { acceptedPermissions } : {}),
      ...(acceptedScopes ? { acceptedScopes } : {}),
      ...(tokenScopes !== undefined ? { tokenScopes } : {}),
    }
  }
  return { kind: 'forbidden', ...base }
}

/** Classifies a thrown Octokit error (see {@link classifyGithubAnswer}). */
export function classifyGithubError(err: unknown, now = Date.now()): GithubRefusal {
  return classifyGithubAnswer(githubAnswerOf(err), now)
}

/** Per-caller answers for the causes whose meaning depends on who asked. */
export interface GithubAppErrorOptions {
  /** 401: e.g. the PAT check's `INVALID_TOKEN`, the session's `TOKEN_EXPIRED`. */
  unauthorized?: () => AppError
  /** 404: e.g. `POD_NOT_FOUND`. */
  notFound?: () => AppError
  /** 403 with no more specific cause. */
  forbidden?: () => AppError
  /** Now, epoch ms (tests). */
  now?: number
}

const orgPolicy = (
  code: string,
  refusal: GithubRefusal,
  fix: string,
  details: Record<string, unknown> = {},
) =>
  new AppError(403, code, `GitHub refused the request: ${refusal.message || 'Forbidden'} ${fix}`.trim(), {
    details: { github_message: refusal.message, ...details },
  })

/**
 * The error a client sees for a classified refusal (body `{ statusCode, code, error, message }`
 * plus the fields named here):
 * - rate_limited → 503 `GITHUB_RATE_LIMITED`, `retry_after` (seconds), `reset_at` (ISO time) and
 *   a `Retry-After` header;
 * - sso_required → 403 `GITHUB_SSO_REQUIRED` with `sso_url` when GitHub sent one;
 * - oauth_app_restricted → 403 `GITHUB_OAUTH_APP_RESTRICTED`; ip_not_allowed → 403
 *   `GITHUB_IP_NOT_ALLOWED`; token_policy → 403 `GITHUB_TOKEN_POLICY`;
 * - permission_missing → 403 `GITHUB_PERMISSION_MISSING` with `accepted_permissions`,
 *   `accepted_scopes`, `token_scopes` as GitHub sent them; archived → 403 `REPOSITORY_ARCHIVED`;
 * - rule_violation → 409 `GITHUB_RULE_VIOLATION` naming the rule;
 * - unauthorized → `opts.unauthorized()` or 401 `GITHUB_UNAUTHORIZED`; forbidden →
 *   `opts.forbidden()` or 403 `GITHUB_FORBIDDEN`; not_found → `opts.notFound()` or 404
 *   `GITHUB_NOT_FOUND`; unavailable → 503 `GITHUB_UNAVAILABLE`; other → 502 `GITHUB_ERROR`.
 * GitHub's message is passed on redacted ({@link redactSecrets}) in `github_message`.
 */
export function githubRefusalToAppError(
  refusal: GithubRefusal,
  opts: GithubAppErrorOptions & { cause?: unknown } = {},
): AppError {
  const cause = opts.cause
  const now = opts.now ?? Date.now()
  switch (refusal.kind) {
    case 'rate_limited': {
      const resetAt = refusal.resetAt ?? now + 60_000
      const seconds = Math.max(1, Math.ceil((resetAt - now) / 1000))
      const at = new Date(Math.max(resetAt, now)).toISOString()
      const which = refusal.limit === 'secondary' ? 'secondary rate limit' : 'rate limit'
      return new AppError(503, 'GITHUB_RATE_LIMITED', `GitHub ${which} reached. Try again after ${at}.`, {
        cause,
        expose: true,
        details: { retry_after: seconds, reset_at: at },
        headers: { 'retry-after': String(seconds) },
      })
    }
    case 'sso_required':
      return orgPolicy(
        'GITHUB_SSO_REQUIRED',
        refusal,
        refusal.ssoUrl
          ? `Authorize the token for the organization's SAML single sign-on at ${refusal.ssoUrl}`
          : "Authorize the token for the organization's SAML single sign-on.",
        refusal.ssoUrl ? { sso_url: refusal.ssoUrl } : {},
      )
    case 'oauth_app_restricted':
      return orgPolicy(
        'GITHUB_OAUTH_APP_RESTRICTED',
        refusal,
        '(An organization owner can approve the app, or use a personal access token.)',
      )
    case 'ip_not_allowed':
      return orgPolicy(
        'GITHUB_IP_NOT_ALLOWED',
        refusal,
        "(An organization owner can add Portico's address to the IP allow list.)",
      )
    case 'token_policy':
      return orgPolicy('GITHUB_TOKEN_POLICY', refusal, '(Use a token the organization allows.)')
    case 'permission_missing': {
      const needs = [
        refusal.acceptedPermissions ? `permissions ${refusal.acceptedPermissions}` : undefined,
        refusal.acceptedScopes ? `scopes ${refusal.acceptedScopes}` : undefined,
      ].filter(Boolean)
      return orgPolicy(
        'GITHUB_PERMISSION_MISSING',
        refusal,
        needs.length > 0
          ? `The token needs ${needs.join(' or ')}${refusal.tokenScopes !== undefined ? ` (it has scopes: ${refusal.tokenScopes || 'none'})` : ''}.`
          : '',
        {
          ...(refusal.acceptedPermissions ? { accepted_permissions: refusal.acceptedPermissions } : {}),
          ...(refusal.acceptedScopes ? { accepted_scopes: refusal.acceptedScopes } : {}),
          ...(refusal.tokenScopes !== undefined ? { token_scopes: refusal.tokenScopes } : {}),
        },
      )
    }
    case 'archived':
      return new AppError(
        403,
        'REPOSITORY_ARCHIVED',
        'The repository is archived on GitHub and read-only. Unarchive it to deploy.',
        { cause, details: { github_message: refusal.message } },
      )
    case 'rule_violation': {
      // GitHub's message is "Repository rule violations found\n\n<rule>\n\n": keep its sentences on one line.
      const rules = refusal.message.replace(/\s*\n+\s*/g, ' ').trim()
      return new AppError(
        409,
        'GITHUB_RULE_VIOLATION',
        `GitHub's repository rules refused the change: ${rules} A repository admin can let Portico's deploy branches (deploy-*) through the ruleset or branch protection.`,
        { cause, details: { github_message: refusal.message } },
      )
    }
    case 'unauthorized':
      return (
        opts.unauthorized?.() ??
        new AppError(401, 'GITHUB_UNAUTHORIZED', 'GitHub rejected the credentials. Sign in again.', { cause })
      )
    case 'forbidden':
      return (
        opts.forbidden?.() ??
        new AppError(
          403,
          'GITHUB_FORBIDDEN',
          `GitHub denied the request: ${refusal.message || 'Forbidden'}`,
          {
            cause,
          },
        )
      )
    case 'not_found':
      return opts.notFound?.() ?? new AppError(404, 'GITHUB_NOT_FOUND', 'Not found on GitHub', { cause })
    case 'unavailable':
      return new AppError(503, 'GITHUB_UNAVAILABLE', 'GitHub is unavailable. Try again shortly.', {
        cause,
        expose: true,
      })
    default:
      return new AppError(502, 'GITHUB_ERROR', `GitHub rejected the request: ${refusal.message}`, {
        cause,
        expose: true,
      })
  }
}

/**
 * Maps any GitHub failure (an Octokit error) to the error a client sees, by cause
 * ({@link classifyGithubAnswer}, {@link githubRefusalToAppError}). AppErrors pass through.
 */
export function githubErrorToAppError(err: unknown, opts: GithubAppErrorOptions = {}): AppError {
  if (isAppError(err)) return err
  return githubRefusalToAppError(classifyGithubError(err, opts.now), { ...opts, cause: err })
}
