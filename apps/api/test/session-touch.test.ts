import { startTestSimulator } from '@portico/testing'
import t from 'tap'
import { build, signIn } from './helper.js'

// Rolling sessions without a Redis write per request (issue 12), and a touch that fails never
// turns a successful answer into a failure (issue 10 item 4).
const { sim, env } = await startTestSimulator(t)

const DAY_MS = 86_400_000
const sessionKey = (prefix: string, cookie: string) => {
  const value = decodeURIComponent(cookie.split('=').slice(1).join('='))
  return `${prefix}:sess:${value.replace(/^s:/, '').replace(/\.[^.]*$/, '')}`
}
const sessionCookie = (res: { cookies: unknown[] }) =>
  (res.cookies as { name: string; expires?: Date }[]).find((c) => c.name === 'portico_session')

// Tests may take Redis away after the session was read (preHandler runs after onRequest), and
// collect the request's warnings.
const warnings: unknown[][] = []
const app = await build(t, env, (app) => {
  app.addHook('preHandler', async (request) => {
    const log = request.log
    request.log = Object.assign(Object.create(log), {
      warn: (...args: unknown[]) => void warnings.push(args),
    })
    if (request.headers['x-test-redis'] === 'down') app.redis.disconnect()
  })
})
const redisBack = async () => {
  for (let i = 0; i < 100; i++) {
    if (app.redis.status === 'end') await app.redis.connect().catch(() => {})
    if (
      await app.redis.ping().then(
        () => true,
        () => false,
      )
    )
      return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error('Redis did not come back')
}

/** Rewrites the stored session as if it was last saved `daysAgo` days ago. */
async function age(key: string, daysAgo: number): Promise<void> {
  const stored = JSON.parse(String(await app.redis.get(key)))
  stored.cookie.expires = new Date(Date.now() + 30 * DAY_MS - daysAgo * DAY_MS).toISOString()
  await app.redis.set(key, JSON.stringify(stored), 'EX', Math.ceil((30 - daysAgo) * 86_400))
}

t.test('a fresh session is read, not written: no Set-Cookie, Redis value untouched', async (t) => {
  const { cookie } = await signIn(app, sim, 'octocat')
  const key = sessionKey(app.config.REDIS_PREFIX, cookie)
  const before = await app.redis.get(key)
  for (let i = 0; i < 3; i++) {
    const res = await app.inject({ url: '/api/auth/user', headers: { cookie } })
    t.equal(res.statusCode, 200)
    t.equal(sessionCookie(res), undefined, 'no cookie re-sent')
  }
  t.equal(await app.redis.get(key), before, 'the stored session was not rewritten')
})

t.test(
  'a session last saved over an hour ago is renewed: cookie and Redis TTL back to 30 days',
  async (t) => {
    const { cookie } = await signIn(app, sim, 'octocat')
    const key = sessionKey(app.config.REDIS_PREFIX, cookie)
    await age(key, 2)
    t.ok((await app.redis.ttl(key)) < 29 * 86_400, 'aged')
    const res = await app.inject({ url: '/api/auth/user', headers: { cookie } })
    t.equal(res.statusCode, 200)
    const renewed = sessionCookie(res)
    t.ok(renewed?.expires && renewed.expires.getTime() - Date.now() > 29.9 * DAY_MS, 'cookie renewed')
    t.ok((await app.redis.ttl(key)) > 29.9 * 86_400, 'Redis TTL renewed')
    const next = await app.inject({ url: '/api/auth/user', headers: { cookie } })
    t.equal(sessionCookie(next), undefined, 'renewed once, then quiet again')
  },
)

t.test('a touch-only save failing (Redis blip) leaves the answer standing and is logged', async (t) => {
  const { cookie } = await signIn(app, sim, 'octocat')
  const key = sessionKey(app.config.REDIS_PREFIX, cookie)
  await age(key, 2)
  warnings.length = 0
  const res = await app.inject({
    url: '/api/auth/user',
    headers: { cookie, 'x-test-redis': 'down' },
  })
  await redisBack()
  t.equal(res.statusCode, 200, 'the answer stands')
  t.match(res.json(), { login: 'octocat' })
  t.equal(sessionCookie(res), undefined, 'no cookie for a session that was not saved')
  t.ok(
    warnings.some((w) => String(w[1]).includes('could not renew the session')),
    'the failed touch is logged',
  )
  t.ok((await app.redis.ttl(key)) < 29 * 86_400, 'not renewed')
  const after = await app.inject({ url: '/api/auth/user', headers: { cookie } })
  t.equal(after.statusCode, 200, 'the session is still valid')
  t.ok(sessionCookie(after), 'renewed on the next request once Redis is back')
})

t.test('a request that changed the session fails when its save fails', async (t) => {
  // /auth/login stores the OAuth state in the session: that save must succeed or the flow breaks.
  const res = await app.inject({ url: '/auth/login', headers: { 'x-test-redis': 'down' } })
  await redisBack()
  t.equal(res.statusCode, 503)
  t.match(res.json(), { statusCode: 503, code: 'SESSION_STORE_UNAVAILABLE' })
})
