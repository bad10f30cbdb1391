import { createRedis } from '@portico/core'
import { testConfig } from '@portico/testing'
import t from 'tap'
import { startHealthServer } from '../src/health/health-server.js'
import { openDb } from './fixtures/connections.js'

const config = await testConfig(t)
const db = openDb(t, config)
const redis = createRedis(config.REDIS_URL, 'worker')
t.teardown(() => redis.disconnect())

t.test('live, ready and metrics; live fails after the event loop was blocked', async (t) => {
  const health = await startHealthServer({ host: '127.0.0.1', port: 0, maxBlockMs: 300, redis, db })
  t.teardown(() => health.close())
  const live = await fetch(`${health.url}/live`)
  t.equal(live.status, 200)
  const ready = await fetch(`${health.url}/ready`)
  t.equal(ready.status, 200)
  t.same(await ready.json(), { status: 'ok', redis: 'ok', postgres: 'ok' })
  const metrics = await fetch(`${health.url}/metrics`)
  t.equal(metrics.status, 200)
  const text = await metrics.text()
  // A review's finding: the worker served no process metrics, which the dashboard's memory and
  // event-loop panels read from every process.
  for (const family of ['process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds'])
    t.match(text, new RegExp(`^# TYPE ${family} `, 'm'), `${family} is served`)
  // Block the event loop well past the threshold, as a quadratic regex once did.
  const until = Date.now() + 1200
  while (Date.now() < until) {}
  await new Promise((resolve) => setTimeout(resolve, 600))
  const blocked = await fetch(`${health.url}/live`)
  t.equal(blocked.status, 503)
  t.match(await blocked.json(), { status: 'blocked' })
})

t.test('ready names an unavailable dependency', async (t) => {
  const dead = createRedis('redis://127.0.0.1:1', 'worker')
  dead.on('error', () => {})
  t.teardown(() => dead.disconnect())
  const health = await startHealthServer({ host: '127.0.0.1', port: 0, maxBlockMs: 10_000, redis: dead, db })
  t.teardown(() => health.close())
  const ready = await fetch(`${health.url}/ready`)
  t.equal(ready.status, 503)
  t.match(await ready.json(), { status: 'unavailable', redis: 'unavailable', postgres: 'ok' })
})

t.test('a health path asked with another method is 405 with Allow; an unknown path is 404', async (t) => {
  const health = await startHealthServer({ host: '127.0.0.1', port: 0, maxBlockMs: 10_000, redis, db })
  t.teardown(() => health.close())
  // A new user's trial: POST /live answered 404 "serves /live, /ready and /metrics only".
  for (const path of ['/live', '/ready', '/metrics']) {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await fetch(`${health.url}${path}`, { method })
      t.equal(res.status, 405, `${method} ${path}`)
      t.equal(res.headers.get('allow'), 'GET, HEAD', `${method} ${path}: Allow`)
      const message = `${method} is not allowed on ${path}: use GET.`
      t.same(await res.json(), { statusCode: 405, code: 'METHOD_NOT_ALLOWED', error: message, message })
    }
    const head = await fetch(`${health.url}${path}`, { method: 'HEAD' })
    t.equal(head.status, 200, `HEAD ${path}`)
    t.equal(await head.text(), '', `HEAD ${path}: no body`)
  }
  const missing = await fetch(`${health.url}/healthz`, { method: 'POST' })
  t.equal(missing.status, 404)
  t.match(await missing.json(), { statusCode: 404, code: 'NOT_FOUND' })
})
