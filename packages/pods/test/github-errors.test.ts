import { AppError, githubErrorToAppError } from '@portico/core'
import t from 'tap'
import { githubMessage, rateLimitResetAt } from '../src/index.js'

/** An Octokit RequestError's shape. */
const ghError = (status: number | undefined, headers: Record<string, string> = {}, data: unknown = {}) =>
  Object.assign(
    new Error('GitHub error'),
    status === undefined ? {} : { status, response: { headers, data } },
  )

t.test('rate limits: retry-after, exhausted quota, secondary limits', async (t) => {
  const now = 1_800_000_000_000
  t.equal(rateLimitResetAt(ghError(403, { 'retry-after': '30' }), now), now + 30_000)
  t.equal(rateLimitResetAt(ghError(429, { 'retry-after': '0' }), now), now)
  t.equal(
    rateLimitResetAt(ghError(403, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1800000600' }), now),
    1_800_000_600_000,
  )
  t.equal(
    rateLimitResetAt(ghError(403, {}, { message: 'You have exceeded a secondary rate limit.' }), now),
    now + 60_000,
  )
  t.equal(rateLimitResetAt(ghError(403, {}, { message: 'Resource not accessible' }), now), undefined)
  t.equal(rateLimitResetAt(ghError(404, { 'retry-after': '5' }), now), undefined)

  const err = githubErrorToAppError(ghError(403, { 'retry-after': '30' }))
  t.match(err, { statusCode: 503, code: 'GITHUB_RATE_LIMITED', expose: true, details: { reset_at: String } })
  t.equal(err.headers?.['retry-after'], '30')
})

t.test('status mapping', async (t) => {
  t.match(githubErrorToAppError(ghError(undefined)), { statusCode: 503, code: 'GITHUB_UNAVAILABLE' })
  t.match(githubErrorToAppError(ghError(502)), { statusCode: 503, code: 'GITHUB_UNAVAILABLE' })
  t.match(githubErrorToAppError(ghError(401)), { statusCode: 401, code: 'GITHUB_UNAUTHORIZED' })
  t.match(githubErrorToAppError(ghError(403, {}, { message: 'Forbidden' })), {
    statusCode: 403,
    code: 'GITHUB_FORBIDDEN',
    message: 'GitHub denied the request: Forbidden',
  })
  t.match(githubErrorToAppError(ghError(404)), { statusCode: 404, code: 'GITHUB_NOT_FOUND' })
  t.match(
    githubErrorToAppError(ghError(404), {
      notFound: () => new AppError(404, 'POD_NOT_FOUND', 'Pod not found: a/b'),
    }),
    { code: 'POD_NOT_FOUND' },
  )
  t.match(githubErrorToAppError(ghError(422, {}, { message: 'Validation Failed' })), {
    statusCode: 502,
    code: 'GITHUB_ERROR',
  })
  const own = new AppError(401, 'TOKEN_EXPIRED', 'Sign in again.')
  t.equal(githubErrorToAppError(own), own, 'AppErrors pass through')
})

t.test('messages include validation details and never a token', async (t) => {
  t.equal(
    githubMessage(
      ghError(
        422,
        {},
        { message: 'Validation Failed', errors: [{ message: 'A pull request already exists for acme:x.' }] },
      ),
    ),
    'Validation Failed: A pull request already exists for acme:x.',
  )
  t.notMatch(
    githubMessage(ghError(403, {}, { message: 'token ghp_octocat00000000000000000000000000001 is bad' })),
    /ghp_octocat0000/,
  )
})
