import t from 'tap'
import { build } from './helper.js'

t.test('GET /health/live answers while the process runs', async (t) => {
  const app = await build(t)
  const res = await app.inject({ url: '/health/live' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status: 'ok' })
})

t.test('GET /health/ready is 200 when Postgres and Redis answer', async (t) => {
  const app = await build(t)
  const res = await app.inject({ url: '/health/ready' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status: 'ready', postgres: 'ok', redis: 'ok' })
})

t.test('GET /health/ready is 503 naming Redis when Redis is unreachable', async (t) => {
  const app = await build(t, { REDIS_URL: 'redis://127.0.0.1:1' })
  const res = await app.inject({ url: '/health/ready' })
  t.equal(res.statusCode, 503)
  const body = res.json()
  t.equal(body.code, 'NOT_READY')
  t.equal(body.redis, 'unavailable')
  t.equal(body.postgres, 'ok')
  t.match(body.message, /redis/)
  t.notMatch(body.message, /postgres/)
})

t.test('GET /health/ready is 503 naming Postgres when Postgres is unreachable', async (t) => {
  const app = await build(t, { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' })
  const res = await app.inject({ url: '/health/ready' })
  t.equal(res.statusCode, 503)
  t.equal(res.json().postgres, 'unavailable')
  t.equal(res.json().redis, 'ok')
})
