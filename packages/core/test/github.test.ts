import { startSimulator } from '@portico/github-sim'
import t from 'tap'
import { createOctokit } from '../src/github.js'
import { githubErrorStatus } from '../src/github-refusal.js'

const sim = await startSimulator()
t.teardown(() => sim.close())
const TOKEN = 'ghp_octocat00000000000000000000000000001'
const ROUTE = 'GET /user'

t.beforeEach(() => sim.ledger.clear())

t.test('talks to GITHUB_API_URL with the token', async (t) => {
  const octokit = createOctokit({ token: TOKEN, baseUrl: `${sim.apiUrl}/` })
  const { data } = await octokit.rest.users.getAuthenticated()
  t.equal(data.login, 'octocat')
  t.equal(sim.ledger.entries({ route: ROUTE })[0]?.login, 'octocat')
})

t.test('retries server errors a bounded number of times', async (t) => {
  const octokit = createOctokit({ token: TOKEN, baseUrl: sim.apiUrl, retries: 2, retryBaseMs: 10 })
  sim.injectFault({ path: '/user', status: 502, times: 2 })
  t.equal((await octokit.rest.users.getAuthenticated()).data.login, 'octocat')
  t.equal(sim.ledger.count({ route: ROUTE }), 3)

  sim.ledger.clear()
  sim.injectFault({ path: '/user', status: 503, times: 3 })
  const err = await octokit.rest.users.getAuthenticated().catch((e: unknown) => e)
  t.equal(githubErrorStatus(err), 503)
  t.equal(sim.ledger.count({ route: ROUTE }), 3, 'gave up after 2 retries')
})

t.test('waits out a secondary rate limit when retry-after is short', async (t) => {
  const octokit = createOctokit({ token: TOKEN, baseUrl: sim.apiUrl })
  sim.injectFault({ path: '/user', status: 403, retryAfter: 1 })
  t.equal((await octokit.rest.users.getAuthenticated()).data.login, 'octocat')
  t.equal(sim.ledger.count({ route: ROUTE }), 2)
})

t.test('fails at once when retry-after is longer than it is worth waiting', async (t) => {
  const octokit = createOctokit({ token: TOKEN, baseUrl: sim.apiUrl, maxRetryAfterSeconds: 5 })
  sim.injectFault({ path: '/user', status: 429, retryAfter: 120 })
  const err = await octokit.rest.users.getAuthenticated().catch((e: unknown) => e)
  t.equal(githubErrorStatus(err), 429)
  t.equal(sim.ledger.count({ route: ROUTE }), 1)
})

t.test('does not retry client errors', async (t) => {
  const bad = createOctokit({ token: 'ghp_unknown', baseUrl: sim.apiUrl })
  t.equal(githubErrorStatus(await bad.rest.users.getAuthenticated().catch((e: unknown) => e)), 401)
  const octokit = createOctokit({ token: TOKEN, baseUrl: sim.apiUrl })
  const missing = await octokit.rest.repos.get({ owner: 'acme', repo: 'nope' }).catch((e: unknown) => e)
  t.equal(githubErrorStatus(missing), 404)
  t.equal(sim.ledger.count({ route: ROUTE }), 1)
  t.equal(sim.ledger.count({ route: 'GET /repos/{owner}/{repo}' }), 1)
})

t.test('every attempt gets its own deadline', async (t) => {
  const octokit = createOctokit({
    token: TOKEN,
    baseUrl: sim.apiUrl,
    requestTimeoutMs: 1000,
    retryBaseMs: 400,
  })
  // Three attempts with backoff take longer than one deadline; each attempt has its own.
  sim.injectFault({ path: '/user', status: 502, times: 2 })
  t.equal((await octokit.rest.users.getAuthenticated()).data.login, 'octocat')
  t.equal(sim.ledger.count({ route: ROUTE }), 3)
})

t.test('each request gets its own deadline', async (t) => {
  const octokit = createOctokit({ token: TOKEN, baseUrl: sim.apiUrl, requestTimeoutMs: 200, retries: 0 })
  sim.setLatency(1000)
  t.teardown(() => sim.setLatency(0))
  const err = await octokit.rest.users.getAuthenticated().catch((e: unknown) => e)
  t.ok(err instanceof Error, 'times out')
  t.not(githubErrorStatus(err), 200)
  sim.setLatency(0)
  t.equal(
    (await octokit.rest.users.getAuthenticated()).data.login,
    'octocat',
    'the next request has a fresh deadline',
  )
})

t.test('githubErrorStatus of non-HTTP failures', async (t) => {
  t.equal(githubErrorStatus(new Error('socket hang up')), undefined)
  t.equal(githubErrorStatus(null), undefined)
})
