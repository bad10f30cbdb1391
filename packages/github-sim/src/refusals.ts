import type { FaultSpec } from './types.js'

/** GitHub's 403/429 refusals by cause, as the simulator reproduces them. */
export type RefusalKind =
  | 'secondary_rate_limit'
  | 'secondary_rate_limit_429'
  | 'sso_required'
  | 'oauth_app_restricted'
  | 'ip_allow_list'
  | 'classic_pat_forbidden'
  | 'permission_missing'
  | 'scope_missing'
  | 'archived'
  | 'rule_violation'
  | 'protected_branch'

/** Where and how often a refusal applies, and the values its message and headers name. */
export interface RefusalOptions {
  method?: string
  path?: string | RegExp
  times?: number
  /** Organisation login named in the message (default `acme`). */
  org?: string
  /** Seconds for `retry-after` (secondary rate limits; default 60). */
  retryAfter?: number
  /** `x-accepted-github-permissions` value (default `contents=read`). */
  permissions?: string
  /** `x-accepted-oauth-scopes` value (default `repo`). */
  scopes?: string
  /** rule_violation: the violated rule's sentence (default: branch creation restricted). */
  rule?: string
  /** protected_branch: the branch named in the message (default `main`). */
  branch?: string
}

/**
 * A fault that answers the way GitHub refuses for `kind` (status, message and headers, from
 * GitHub's REST docs and answers seen in the wild):
 * - `secondary_rate_limit`: 403 "You have exceeded a secondary rate limit…" + `retry-after`;
 *   `secondary_rate_limit_429` the same as 429;
 * - `sso_required`: 403 "Resource protected by organization SAML enforcement…" +
 *   `x-github-sso: required; url=…/orgs/{org}/sso?authorization_request=…`;
 * - `oauth_app_restricted`: 403 "Although you appear to have the correct authorization
 *   credentials, the `{org}` organization has enabled OAuth App access restrictions…";
 * - `ip_allow_list`: 403 "… the `{org}` organization has an IP allow list enabled, and your IP
 *   address is not permitted to access this resource.";
 * - `classic_pat_forbidden`: 403 "`{org}` forbids access via a personal access token (classic)…";
 * - `permission_missing`: 403 "Resource not accessible by personal access token" +
 *   `x-accepted-github-permissions`; `scope_missing`: 403 "Resource not accessible by
 *   integration"-style answer with `x-accepted-oauth-scopes` the token lacks;
 * - `archived`: 403 "Repository was archived so is read-only." (writes to an archived repo);
 * - `rule_violation`: 422 "Repository rule violations found\n\n{rule}\n\n" (a ruleset refuses a
 *   ref creation, update or commit; "About rulesets" in GitHub's docs);
 * - `protected_branch`: 422 "Protected branch update failed for refs/heads/{branch}." (classic
 *   branch protection refusing a ref update).
 * The primary rate limit needs no fault: `setRateLimit(n, { remaining: 0 })` answers 403 "API
 * rate limit exceeded for user ID {id}." with `x-ratelimit-remaining: 0`.
 */
export function refusalFault(kind: RefusalKind, o: RefusalOptions = {}): FaultSpec {
  const org = o.org ?? 'acme'
  const where = {
    ...(o.method ? { method: o.method } : {}),
    ...(o.path ? { path: o.path } : {}),
    ...(o.times !== undefined ? { times: o.times } : {}),
  }
  const credentials = 'Although you appear to have the correct authorization credentials,'
  switch (kind) {
    case 'secondary_rate_limit':
    case 'secondary_rate_limit_429':
      return {
        ...where,
        status: kind === 'secondary_rate_limit' ? 403 : 429,
        retryAfter: o.retryAfter ?? 60,
        message:
          'You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.',
      }
    case 'sso_required':
      return {
        ...where,
        status: 403,
        message:
          'Resource protected by organization SAML enforcement. You must grant your Personal Access token access to this organization.',
        headers: {
          'x-github-sso': `required; url=https://github.com/orgs/${org}/sso?authorization_request=AZSCKtL4U8yX1H3sCQIVnVgmjmon5fWxcY2lUNfqy`,
        },
      }
    case 'oauth_app_restricted':
      return {
        ...where,
        status: 403,
        message: `${credentials} the \`${org}\` organization has enabled OAuth App access restrictions, meaning that data access to third-parties is limited. For more information on these restrictions, including how to enable this app, visit https://docs.github.com/articles/restricting-access-to-your-organization-s-data/`,
      }
    case 'ip_allow_list':
      return {
        ...where,
        status: 403,
        message: `${credentials} the \`${org}\` organization has an IP allow list enabled, and your IP address is not permitted to access this resource.`,
      }
    case 'classic_pat_forbidden':
      return {
        ...where,
        status: 403,
        message: `\`${org}\` forbids access via a personal access token (classic). Please use a GitHub App, OAuth App, or a personal access token with fine-grained permissions.`,
      }
    case 'permission_missing':
      return {
        ...where,
        status: 403,
        message: 'Resource not accessible by personal access token',
        headers: { 'x-accepted-github-permissions': o.permissions ?? 'contents=read' },
      }
    case 'scope_missing':
      return {
        ...where,
        status: 403,
        message: 'Resource not accessible by integration',
        headers: { 'x-accepted-oauth-scopes': o.scopes ?? 'repo' },
      }
    case 'archived':
      return { ...where, status: 403, message: 'Repository was archived so is read-only.' }
    case 'rule_violation':
      return {
        ...where,
        status: 422,
        message: `Repository rule violations found\n\n${o.rule ?? 'Cannot create ref due to creations being restricted.'}\n\n`,
      }
    case 'protected_branch':
      return {
        ...where,
        status: 422,
        message: `Protected branch update failed for refs/heads/${o.branch ?? 'main'}.`,
      }
  }
}
