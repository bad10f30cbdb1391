import t from 'tap'
import { AppError } from '../src/errors.js'
import {
  classifyGithubAnswer,
  classifyGithubError,
  type GithubAnswer,
  githubErrorStatus,
  githubErrorToAppError,
} from '../src/github-refusal.js'

const NOW = 1_800_000_000_000
const answer = (status: number, headers: Record<string, string>, message: string): GithubAnswer => ({
  status,
  headers,
  message,
  answered: true,
})
/** An Octokit RequestError's shape. */
const octokitError = (status: number, headers: Record<string, string>, message: string) =>
  Object.assign(new Error(message), { status, response: { headers, data: { message } } })

const credentials = 'Although you appear to have the correct authorization credentials,'

// Real response shapes, from GitHub's REST docs and answers reported by people running integrations.
const TABLE: Array<[string, GithubAnswer, object, object]> = [
  [
    '401 bad credentials',
    answer(401, {}, 'Bad credentials'),
    { kind: 'unauthorized' },
    { statusCode: 401, code: 'GITHUB_UNAUTHORIZED' },
  ],
  [
    'primary rate limit (403, remaining 0)',
    answer(
      403,
      {
        'x-ratelimit-remaining': '0',
        'x-ratelimit-reset': String(NOW / 1000 + 600),
        'x-ratelimit-limit': '5000',
      },
      'API rate limit exceeded for user ID 1.',
    ),
    { kind: 'rate_limited', limit: 'primary', resetAt: NOW + 600_000 },
    {
      statusCode: 503,
      code: 'GITHUB_RATE_LIMITED',
      details: { retry_after: 600 },
      headers: { 'retry-after': '600' },
    },
  ],
  [
    'primary rate limit (429, remaining 0)',
    answer(
      429,
      { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(NOW / 1000 + 30) },
      'API rate limit exceeded for 1.2.3.4.',
    ),
    { kind: 'rate_limited', limit: 'primary', resetAt: NOW + 30_000 },
    { statusCode: 503, code: 'GITHUB_RATE_LIMITED', details: { retry_after: 30 } },
  ],
  [
    'secondary rate limit with retry-after',
    answer(
      403,
      { 'retry-after': '45', 'x-ratelimit-remaining': '4990' },
      'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.',
    ),
    { kind: 'rate_limited', limit: 'secondary', resetAt: NOW + 45_000 },
    {
      statusCode: 503,
      code: 'GITHUB_RATE_LIMITED',
      details: { retry_after: 45 },
      message: /secondary rate limit/,
    },
  ],
  [
    'secondary rate limit without headers waits a minute',
    answer(403, {}, 'You have exceeded a secondary rate limit.'),
    { kind: 'rate_limited', limit: 'secondary', resetAt: NOW + 60_000 },
    { statusCode: 503, code: 'GITHUB_RATE_LIMITED', details: { retry_after: 60 } },
  ],
  [
    'abuse detection (older wording)',
    answer(403, { 'retry-after': '5' }, 'You have triggered an abuse detection mechanism.'),
    { kind: 'rate_limited', resetAt: NOW + 5000 },
    { statusCode: 503, code: 'GITHUB_RATE_LIMITED' },
  ],
  [
    'failed-login limit',
    answer(403, {}, 'Maximum number of login attempts exceeded. Please try again later.'),
    { kind: 'rate_limited' },
    { statusCode: 503, code: 'GITHUB_RATE_LIMITED' },
  ],
  [
    'SAML SSO enforcement',
    answer(
      403,
      { 'x-github-sso': 'required; url=https://github.com/orgs/acme/sso?authorization_request=AZSC' },
      'Resource protected by organization SAML enforcement. You must grant your Personal Access token access to this organization.',
    ),
    { kind: 'sso_required', ssoUrl: 'https://github.com/orgs/acme/sso?authorization_request=AZSC' },
    {
      statusCode: 403,
      code: 'GITHUB_SSO_REQUIRED',
      message: /SAML enforcement.*https:\/\/github\.com\/orgs\/acme\/sso/,
      details: { sso_url: 'https://github.com/orgs/acme/sso?authorization_request=AZSC' },
    },
  ],
  [
    'OAuth App access restrictions',
    answer(
      403,
      {},
      `${credentials} the \`acme\` organization has enabled OAuth App access restrictions, meaning that data access to third-parties is limited.`,
    ),
    { kind: 'oauth_app_restricted' },
    {
      statusCode: 403,
      code: 'GITHUB_OAUTH_APP_RESTRICTED',
      message: /`acme` organization has enabled OAuth App/,
    },
  ],
  [
    'IP allow list',
    answer(
      403,
      {},
      `${credentials} the \`acme\` organization has an IP allow list enabled, and your IP address is not permitted to access this resource.`,
    ),
    { kind: 'ip_not_allowed' },
    { statusCode: 403, code: 'GITHUB_IP_NOT_ALLOWED' },
  ],
  [
    'classic PATs forbidden by the organisation',
    answer(403, {}, '`acme` forbids access via a personal access token (classic).'),
    { kind: 'token_policy' },
    { statusCode: 403, code: 'GITHUB_TOKEN_POLICY' },
  ],
  [
    'fine-grained permission missing',
    answer(
      403,
      { 'x-accepted-github-permissions': 'contents=write' },
      'Resource not accessible by personal access token',
    ),
    { kind: 'permission_missing', acceptedPermissions: 'contents=write' },
    {
      statusCode: 403,
      code: 'GITHUB_PERMISSION_MISSING',
      message: /permissions contents=write/,
      details: { accepted_permissions: 'contents=write' },
    },
  ],
  [
    'OAuth scope missing',
    answer(
      403,
      { 'x-accepted-oauth-scopes': 'repo', 'x-oauth-scopes': 'read:user' },
      'Must have admin rights to Repository.',
    ),
    { kind: 'permission_missing', acceptedScopes: 'repo', tokenScopes: 'read:user' },
    {
      statusCode: 403,
      code: 'GITHUB_PERMISSION_MISSING',
      message: /scopes repo \(it has scopes: read:user\)/,
      details: { accepted_scopes: 'repo', token_scopes: 'read:user' },
    },
  ],
  [
    'scope held: not a missing-permission answer',
    answer(403, { 'x-accepted-oauth-scopes': 'repo', 'x-oauth-scopes': 'repo, read:org' }, 'Forbidden'),
    { kind: 'forbidden' },
    { statusCode: 403, code: 'GITHUB_FORBIDDEN' },
  ],
  [
    'archived repository',
    answer(403, {}, 'Repository was archived so is read-only.'),
    { kind: 'archived' },
    { statusCode: 403, code: 'REPOSITORY_ARCHIVED' },
  ],
  [
    'ruleset refuses a branch creation',
    answer(
      422,
      {},
      'Repository rule violations found\n\nCannot create ref due to creations being restricted.\n\n',
    ),
    { kind: 'rule_violation' },
    {
      statusCode: 409,
      code: 'GITHUB_RULE_VIOLATION',
      message:
        /rules refused the change: Repository rule violations found Cannot create ref due to creations being restricted\. A repository admin/,
    },
  ],
  [
    'classic branch protection',
    answer(422, {}, 'Protected branch update failed for refs/heads/main.'),
    { kind: 'rule_violation' },
    { statusCode: 409, code: 'GITHUB_RULE_VIOLATION' },
  ],
  ['404', answer(404, {}, 'Not Found'), { kind: 'not_found' }, { statusCode: 404, code: 'GITHUB_NOT_FOUND' }],
  [
    '502',
    answer(502, {}, 'Server Error'),
    { kind: 'unavailable' },
    { statusCode: 503, code: 'GITHUB_UNAVAILABLE' },
  ],
  ['422', answer(422, {}, 'Validation Failed'), { kind: 'other' }, { statusCode: 502, code: 'GITHUB_ERROR' }],
]

t.test('classifies real GitHub refusals by cause', async (t) => {
  for (const [what, input, refusal, appError] of TABLE) {
    t.match(classifyGithubAnswer(input, NOW), refusal, what)
    const err = octokitError(input.status as number, input.headers as Record<string, string>, input.message)
    t.match(classifyGithubError(err, NOW), refusal, `${what} (Octokit error)`)
    t.match(githubErrorToAppError(err, { now: NOW }), appError, `${what} → AppError`)
  }
})

t.test('a rate-limited 403 is never an invalid token, whatever the caller maps 401/403 to', async (t) => {
  const err = octokitError(
    403,
    { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1800000600' },
    'API rate limit exceeded for user ID 1.',
  )
  const invalid = () => new AppError(400, 'INVALID_TOKEN', 'GitHub PAT is invalid')
  t.match(githubErrorToAppError(err, { unauthorized: invalid, forbidden: invalid, now: NOW }), {
    statusCode: 503,
    code: 'GITHUB_RATE_LIMITED',
    details: { retry_after: 600, reset_at: '2027-01-15T08:10:00.000Z' },
  })
  t.match(githubErrorToAppError(octokitError(401, {}, 'Bad credentials'), { unauthorized: invalid }), {
    code: 'INVALID_TOKEN',
  })
})

t.test('GitHub messages are passed on redacted and bounded', async (t) => {
  const err = octokitError(
    403,
    {},
    `token ghp_octocat00000000000000000000000000001 ${'x'.repeat(1000)} IP allow list`,
  )
  const refusal = classifyGithubError(err)
  t.notMatch(refusal.message, /ghp_octocat/)
  t.ok(refusal.message.length <= 300)
})

t.test(
  'network failures: Octokit reports them as 500 without a response; aborts have no status',
  async (t) => {
    const network = Object.assign(new Error('fetch failed'), { status: 500 })
    t.equal(githubErrorStatus(network), 500)
    t.match(classifyGithubError(network), { kind: 'unavailable' })
    t.equal(githubErrorStatus(new Error('aborted')), undefined)
    t.match(githubErrorToAppError(new Error('socket hang up')), {
      statusCode: 503,
      code: 'GITHUB_UNAVAILABLE',
    })
    const own = new AppError(401, 'TOKEN_EXPIRED', 'Sign in again')
    t.equal(githubErrorToAppError(own), own, 'AppErrors pass through')
  },
)
