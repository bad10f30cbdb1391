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
  t.match(body, {
    status: 'healthy',
    github: 'ok',
    repo: 'ok',
    scopes: { repo: true, workflow: true },
    rate_limit: { remaining: Number, limit: 5000, reset_at: String },
    postgres: 'ok',
    redis: 'ok',
  })
  t.ok(Date.parse(body.rate_limit.reset_at) > Date.now())
  const again = await app.inject({ url: '/health' })
  t.equal(again.statusCode, 200)
  t.equal(sim.ledger.count({ counted: true }), 1, 'only the first repository read is counted')
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
  t.match(res.json(), { status: 'healthy', github: 'unconfigured', rate_limit: null, postgres: 'ok' })
  const noRepo = await build(t, { ...env, GH_TOKEN: '', GH_REPO: '' })
  t.match((await noRepo.inject({ url: '/health' })).json(), { status: 'healthy', repo: 'unconfigured' })
})

t.test('scopes are reported as the token has them', async (t) => {
  sim.addToken('portico-bot', 'ghp_healthnoworkflow000000000000000000001', { scopes: ['repo'] })
  const app = await build(t, { ...env, GH_TOKEN: 'ghp_healthnoworkflow000000000000000000001' })
  const res = await app.inject({ url: '/health' })
  t.equal(res.statusCode, 200)
  t.same(res.json().scopes, { repo: true, workflow: false })
})

t.test('unhealthy: each failure is named, with 503', async (t) => {
  const badToken = await build(t, { ...env, GH_TOKEN: 'ghp_revokedhealthtoken0000000000000000001' })
  const unauthorized = await badToken.inject({ url: '/health' })
  t.equal(unauthorized.statusCode, 503)
  t.match(unauthorized.json(), {
    status: 'unhealthy',
    github: 'unauthorized',
    message: /github unauthorized/,
  })
  t.notMatch(unauthorized.body, /ghp_/, 'no token in the body')

  const missingRepo = await build(t, { ...env, GH_REPO: 'acme/no-such-repo' })
  const notFound = await missingRepo.inject({ url: '/health' })
  t.equal(notFound.statusCode, 503)
  t.match(notFound.json(), {
    status: 'unhealthy',
    github: 'ok',
    repo: 'not_found',
    message: /repo not_found/,
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
    github: 'ok',
    message: /redis unavailable/,
  })

  const noPostgres = await build(t, { ...env, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' })
  const pgDown = await noPostgres.inject({ url: '/health' })
  t.equal(pgDown.statusCode, 503)
  t.match(pgDown.json(), {
    status: 'unhealthy',
    postgres: 'unavailable',
    redis: 'ok',
    message: /postgres unavailable/,
  })
})

t.test('rate limited: reported, and the check fails', async (t) => {
  const app = await build(t, env)
  sim.injectFault({ method: 'GET', path: '/rate_limit', status: 429, retryAfter: 30 })
  const res = await app.inject({ url: '/health' })
  t.equal(res.statusCode, 503)
  t.match(res.json(), { status: 'unhealthy', github: 'rate_limited' })
})
