import { refusalFault } from '@portico/github-sim'
import { startTestSimulator } from '@portico/testing'
import t from 'tap'
import { build } from './helper.js'

const { sim, env } = await startTestSimulator(t)

t.test('healthy: GitHub, the specs repository, scopes, rate limit, Postgres and Redis', async (t) => {
  const app = await build(t, env)
  sim.ledger.clear()
  const res = await app.inject({ url: '/health' })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.same(Object.keys(body).sort(), [
    'github',
    'postgres',
    'rate_limit',
    'redis',
    'repo',
    'repo_status',
    'scopes',
    'status',
    'token_kind',
  ])
  t.match(body, {
    status: 'healthy',
    github: 'connected',
    repo: 'acme/infra-specs',
    scopes: { repo: true, workflow: true },
    token_kind: 'classic-pat',
    rate_limit: { remaining: Number, limit: 5000, reset_at: Number },
    repo_status: 'ok',
    postgres: 'ok',
    redis: 'ok',
  })
  t.ok(Number.isInteger(body.rate_limit.reset_at), 'reset_at is whole Unix seconds')
  t.ok(body.rate_limit.reset_at > Date.now() / 1000 && body.rate_limit.reset_at < Date.now() / 1000 + 7200)
  const flood = await Promise.all(Array.from({ length: 20 }, () => app.inject({ url: '/health' })))
  t.ok(flood.every((r) => r.statusCode === 200))
  t.equal(sim.ledger.count({ counted: true }), 1, 'only the first repository read is counted')
  t.equal(
    sim.ledger.entries({ kind: 'api' }).length,
    2,
    'the GitHub part is cached for 30 s: 21 checks, one rate-limit read and one repository read',
  )
  t.equal((await app.inject({ url: '/health/live' })).statusCode, 200, '/health/live is unchanged')
  t.same((await app.inject({ url: '/health/ready' })).json(), {
    status: 'ready',
    postgres: 'ok',
    redis: 'ok',
  })
})

t.test('no token at all: github "unconfigured" does not fail the check', async (t) => {
  const app = await build(t, { ...env, GH_TOKEN: '' })
  const res = await app.inject({ url: '/health' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), {
    status: 'healthy',
    github: 'unconfigured',
    repo: 'acme/infra-specs',
    scopes: null,
    token_kind: null,
    rate_limit: null,
    repo_status: 'unknown',
    postgres: 'ok',
    redis: 'ok',
  })
  const noRepo = await build(t, { ...env, GH_TOKEN: '', GH_REPO: '' })
  t.match((await noRepo.inject({ url: '/health' })).json(), {
    status: 'healthy',
    repo: null,
    repo_status: 'unconfigured',
  })
})

t.test('scopes are reported as the token has them', async (t) => {
  sim.addToken('portico-bot', 'ghp_healthnoworkflow000000000000000000001', { scopes: ['repo'] })
  const app = await build(t, { ...env, GH_TOKEN: 'ghp_healthnoworkflow000000000000000000001' })
  const res = await app.inject({ url: '/health' })
  t.equal(res.statusCode, 200)
  t.same(res.json().scopes, { repo: true, workflow: false })
})

t.test('a fine-grained token (no X-OAuth-Scopes): scopes null with the token kind, healthy', async (t) => {
  const token = 'github_pat_11HEALTH0000000000000000_fine0000000000000000000000000000000001'
  sim.addToken('portico-bot', token, { kind: 'fine-grained' })
  const app = await build(t, { ...env, GH_TOKEN: token })
  const res = await app.inject({ url: '/health' })
  t.equal(res.statusCode, 200, res.body)
  t.match(res.json(), { status: 'healthy', github: 'connected', token_kind: 'fine-grained-pat' })
  t.equal(res.json().scopes, null, 'never false: GitHub lists no scopes for this kind')
})

t.test('unhealthy: each failure is named, with 503', async (t) => {
  const badToken = await build(t, { ...env, GH_TOKEN: 'ghp_revokedhealthtoken0000000000000000001' })
  const unauthorized = await badToken.inject({ url: '/health' })
  t.equal(unauthorized.statusCode, 503)
  t.match(unauthorized.json(), {
    status: 'unhealthy',
    github: 'unauthorized',
    error: /github unauthorized/,
    scopes: null,
    rate_limit: null,
  })
  t.notMatch(unauthorized.body, /ghp_/, 'no token in the body')

  const missingRepo = await build(t, { ...env, GH_REPO: 'acme/no-such-repo' })
  const notFound = await missingRepo.inject({ url: '/health' })
  t.equal(notFound.statusCode, 503)
  t.match(notFound.json(), {
    status: 'unhealthy',
    github: 'connected',
    repo: 'acme/no-such-repo',
    repo_status: 'not_found',
    error: /repo not_found/,
  })

  const unreachable = await build(t, { ...env, GITHUB_API_URL: 'http://127.0.0.1:1/api/v3' })
  const down = await unreachable.inject({ url: '/health' })
  t.equal(down.statusCode, 503)
  t.match(down.json(), { status: 'unhealthy', github: 'unavailable', postgres: 'ok', redis: 'ok' })

  const noRedis = await build(t, { ...env, REDIS_URL: 'redis://127.0.0.1:1' })
  const redisDown = await noRedis.inject({ url: '/health' })
  t.equal(redisDown.statusCode, 503)
  t.match(redisDown.json(), {
    status: 'unhealthy',
    redis: 'unavailable',
    github: 'connected',
    error: /redis unavailable/,
  })

  const noPostgres = await build(t, { ...env, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' })
  const pgDown = await noPostgres.inject({ url: '/health' })
  t.equal(pgDown.statusCode, 503)
  t.match(pgDown.json(), {
    status: 'unhealthy',
    postgres: 'unavailable',
    redis: 'ok',
    error: /postgres unavailable/,
  })
})

t.test('rate limited: reported, and the check fails', async (t) => {
  const app = await build(t, env)
  sim.injectFault({ method: 'GET', path: '/rate_limit', status: 429, retryAfter: 30 })
  const res = await app.inject({ url: '/health' })
  t.equal(res.statusCode, 503)
  t.match(res.json(), {
    status: 'unhealthy',
    github: 'rate_limited',
    error: 'Unhealthy: github rate_limited',
  })
})

t.test('a 403 is reported by its cause: rate limit or organisation policy', async (t) => {
  const limited = await build(t, env)
  sim.injectFault(refusalFault('secondary_rate_limit', { method: 'GET', path: '/rate_limit', times: 1 }))
  const res = await limited.inject({ url: '/health' })
  t.equal(res.statusCode, 503)
  t.match(res.json(), { status: 'unhealthy', github: 'rate_limited' })

  const policy = await build(t, env)
  sim.injectFault(refusalFault('sso_required', { method: 'GET', path: '/rate_limit', times: 1 }))
  const refused = await policy.inject({ url: '/health' })
  t.equal(refused.statusCode, 503)
  t.match(refused.json(), {
    status: 'unhealthy',
    github: 'forbidden',
    error: 'Unhealthy: github forbidden',
  })
})
