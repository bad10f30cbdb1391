import { createRedis, endSessionsOfGithubUser, sessionKeyPrefix } from '@portico/core'
import { startTestSimulator, type Teardown, testConfig } from '@portico/testing'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import t from 'tap'
import app from '../src/app.js'
import { serverOptions } from '../src/server-options.js'
import { until } from './e2e.js'
import { freezingProxy, throughProxy } from './freezing-proxy.js'
import { build, signIn, writeHeaders } from './helper.js'

// The in-process session cache (issue 12) and its coherence through Redis client tracking. The
// cache TTL is 60 s, so a session seen gone within the polls below was dropped by an invalidation.
const { sim, env } = await startTestSimulator(t)
const cached = { ...env, API_READ_CACHE_MS: '60000' }

const sessionKey = (prefix: string, cookie: string) => {
  const value = decodeURIComponent(cookie.split('=').slice(1).join('='))
  return `${sessionKeyPrefix(prefix)}${value.replace(/^s:/, '').replace(/\.[^.]*$/, '')}`
}
const userStatus = async (server: FastifyInstance, cookie: string) =>
  (await server.inject({ url: '/api/auth/user', headers: { cookie } })).statusCode
/** Polls until `server` answers `status` for the cookie; how long it took (ms). */
const untilStatus = async (server: FastifyInstance, cookie: string, status: number, what: string) => {
  const started = Date.now()
  await until(async () => ((await userStatus(server, cookie)) === status ? true : undefined), 5000, what)
  return Date.now() - started
}
/** The client id tracking invalidations of the API's main connection are redirected to (-1: none). */
const redirectId = async (server: FastifyInstance) => {
  const info = (await server.redis.call('CLIENT', 'TRACKINGINFO')) as unknown[]
  return Number(info[info.indexOf('redirect') + 1])
}
/**
 * Reads until one is answered from memory. An invalidation still in flight from the sign-in's own
 * write discards a fill that raced it (by design), so the first read after sign-in may not stick.
 */
const untilHit = async (server: FastifyInstance, cookie: string, what: string) => {
  const cache = server.sessionCache
  if (!cache) throw new Error('no session cache')
  await until(
    async () => {
      const hits = cache.stats.hits
      const status = await userStatus(server, cookie)
      if (status !== 200) throw new Error(`read answered ${status}`)
      return cache.stats.hits === hits + 1 ? true : undefined
    },
    5000,
    what,
  )
}
const plainRedis = (t: Teardown, url: string): Redis => {
  const redis = createRedis(url, 'worker')
  t.teardown(() => redis.quit())
  return redis
}

t.test('a signed-in read is answered from memory after the first one', async (t) => {
  const server = await build(t, cached)
  const cache = server.sessionCache
  if (!cache) throw new Error('no session cache')
  t.ok(cache.tracking, 'tracking is on once the app is ready')
  t.not(await redirectId(server), -1)
  const { cookie } = await signIn(server, sim, 'octocat')
  t.equal(await userStatus(server, cookie), 200)
  await untilHit(server, cookie, 'the session kept in memory')
  const before = { ...cache.stats }
  for (let i = 0; i < 5; i++) {
    const res = await server.inject({ url: '/api/auth/user', headers: { cookie } })
    t.equal(res.json().login, 'octocat')
  }
  t.equal(cache.stats.hits - before.hits, 5, 'every read a hit')
  t.equal(cache.stats.misses, before.misses, 'no read went to Redis')
  t.equal(cache.stats.bypasses, 0)
})

t.test('concurrent reads of a session not in memory share one GET', async (t) => {
  const server = await build(t, cached)
  const cache = server.sessionCache
  if (!cache) throw new Error('no session cache')
  const { cookie } = await signIn(server, sim, 'octocat')
  await untilHit(server, cookie, 'the session kept in memory')
  // A round during which the subscriber's check ran late (a loaded machine) bypasses the cache,
  // by design, and proves nothing: such a round is run again.
  let round: { statuses: number[]; misses: number; hits: number } | undefined
  await until(
    async () => {
      cache.invalidate(sessionKey(server.config.REDIS_PREFIX, cookie))
      const before = { ...cache.stats }
      const statuses = await Promise.all(Array.from({ length: 20 }, () => userStatus(server, cookie)))
      if (cache.stats.bypasses !== before.bypasses) return undefined
      round = { statuses, misses: cache.stats.misses - before.misses, hits: cache.stats.hits - before.hits }
      return true
    },
    10_000,
    'a round of reads with tracking live throughout',
  )
  t.same(round?.statuses, Array(20).fill(200))
  t.equal(round?.misses, 1, 'one GET')
  t.equal(round?.hits, 19, 'the other reads shared it')
})

t.test('logout on one API process ends the session on another at once', async (t) => {
  const config = await testConfig(t, cached)
  const start = async () => {
    const server = Fastify(serverOptions(config, false))
    await server.register(app, { config })
    await server.ready()
    t.teardown(() => server.close())
    return server
  }
  const [a, b] = await Promise.all([start(), start()])
  const { cookie } = await signIn(a, sim, 'octocat')
  t.equal(await userStatus(b, cookie), 200)
  await untilHit(b, cookie, 'b to serve the session from memory')

  const out = await a.inject({ method: 'POST', url: '/auth/logout', headers: writeHeaders(a, cookie) })
  t.equal(out.statusCode, 200)
  t.equal(await userStatus(a, cookie), 401, 'the process that logged out knows at once')
  const waited = await untilStatus(b, cookie, 401, 'the other process to see the logout')
  t.ok(waited < 5000, `seen by the other process after ${waited} ms, well before the 60 s TTL`)
})

t.test('sessions ended or changed in Redis by someone else are seen', async (t) => {
  const server = await build(t, cached)
  const redis = plainRedis(t, server.config.REDIS_URL)
  const { cookie } = await signIn(server, sim, 'octocat')
  const key = sessionKey(server.config.REDIS_PREFIX, cookie)
  t.equal(await userStatus(server, cookie), 200)
  t.equal(await userStatus(server, cookie), 200)

  // A change (as key rotation makes): the next reads see the new value.
  const stored = JSON.parse(String(await redis.get(key)))
  stored.user.name = 'Renamed Elsewhere'
  await redis.set(key, JSON.stringify(stored), 'KEEPTTL')
  await until(
    async () => {
      const res = await server.inject({ url: '/api/auth/user', headers: { cookie } })
      return res.json().name === 'Renamed Elsewhere' ? true : undefined
    },
    5000,
    'the changed session',
  )

  // The worker ending the user's sessions (GitHub reports the authorization revoked).
  t.equal(
    await endSessionsOfGithubUser(redis, sessionKeyPrefix(server.config.REDIS_PREFIX), stored.user.github_id),
    1,
  )
  await untilStatus(server, cookie, 401, 'the ended session to stop working')
})

t.test('losing the subscriber empties and bypasses the cache until tracking is back', async (t) => {
  const server = await build(t, cached)
  const cache = server.sessionCache
  if (!cache) throw new Error('no session cache')
  const redis = plainRedis(t, server.config.REDIS_URL)
  const { cookie } = await signIn(server, sim, 'octocat')
  const key = sessionKey(server.config.REDIS_PREFIX, cookie)
  t.equal(await userStatus(server, cookie), 200)
  t.equal(await userStatus(server, cookie), 200)
  const killed = await redirectId(server)

  // Killed and the session deleted in one go: nobody is there to hear of the deletion.
  const replies = await redis.multi().client('KILL', 'ID', String(killed)).del(key).exec()
  t.same(
    replies?.map(([err]) => err),
    [null, null],
  )
  await until(async () => (cache.tracking ? undefined : true), 1000, 'tracking to be seen lost')
  const bypasses = cache.stats.bypasses
  t.equal(await userStatus(server, cookie), 401, 'the cached copy was dropped')
  t.ok(cache.stats.bypasses > bypasses, 'read from Redis while tracking is off')

  await until(async () => (cache.tracking ? true : undefined), 5000, 'tracking to come back')
  const now = await redirectId(server)
  t.not(now, killed, 'redirected to the new subscriber connection')
  t.not(now, -1)
  const again = await signIn(server, sim, 'octocat')
  t.equal(await userStatus(server, again.cookie), 200)
  await untilHit(server, again.cookie, 'the session cached again')
  await redis.del(sessionKey(server.config.REDIS_PREFIX, again.cookie))
  await untilStatus(server, again.cookie, 401, 'invalidations to flow again')
})

t.test('with Redis away a cached session is not served: 503 as without the cache', async (t) => {
  const server = await build(t, cached)
  const cache = server.sessionCache
  if (!cache) throw new Error('no session cache')
  const { cookie } = await signIn(server, sim, 'octocat')
  t.equal(await userStatus(server, cookie), 200)
  t.equal(await userStatus(server, cookie), 200)
  // Like Redis going away: the process learns it when the socket closes, not before.
  server.redis.disconnect()
  await until(async () => (cache.tracking ? undefined : true), 1000, 'tracking to be seen lost')
  const down = await server.inject({ url: '/api/auth/user', headers: { cookie } })
  t.equal(down.statusCode, 503)
  t.equal(down.json().code, 'SESSION_STORE_UNAVAILABLE')

  await server.redis.connect()
  await until(async () => (cache.tracking ? true : undefined), 5000, 'tracking after the reconnect')
  t.equal(await userStatus(server, cookie), 200)
  await untilHit(server, cookie, 'the session cached again after the reconnect')
})

t.test('API_READ_CACHE_MS=0: no cache, no tracking', async (t) => {
  const server = await build(t, { ...env, API_READ_CACHE_MS: '0' })
  t.equal(server.sessionCache, null)
  const info = (await server.redis.call('CLIENT', 'TRACKINGINFO')) as unknown[]
  t.same(info[info.indexOf('flags') + 1], ['off'])
  const { cookie } = await signIn(server, sim, 'octocat')
  t.equal(await userStatus(server, cookie), 200)
  const redis = plainRedis(t, server.config.REDIS_URL)
  await redis.del(sessionKey(server.config.REDIS_PREFIX, cookie))
  t.equal(await userStatus(server, cookie), 401, 'the very next read sees Redis')
})

t.test('a subscriber whose path goes dark without closing stops the cache within seconds', async (t) => {
  const base = await testConfig(t, cached)
  const proxy = await freezingProxy(Number(new URL(base.REDIS_URL).port || 6379), 'portico-session-cache')
  t.teardown(() => proxy.close())
  const server = Fastify(
    serverOptions({ ...base, REDIS_URL: throughProxy(base.REDIS_URL, proxy.port) }, false),
  )
  await server.register(app, { config: { ...base, REDIS_URL: throughProxy(base.REDIS_URL, proxy.port) } })
  await server.ready()
  t.teardown(() => server.close())
  const { cookie } = await signIn(server, sim, 'octocat')
  t.equal(proxy.marked(), 1, 'the subscriber goes through the proxy')
  t.equal(await userStatus(server, cookie), 200)
  t.equal(await userStatus(server, cookie), 200)
  proxy.freeze()
  // Another process logs the user out: the invalidation is sent into the dark.
  const other = plainRedis(t, base.REDIS_URL)
  t.equal(await other.del(sessionKey(base.REDIS_PREFIX, cookie)), 1)
  const took = await untilStatus(server, cookie, 401, 'the deleted session is refused')
  t.ok(took < 5000, `refused after ${took} ms, not after the 60 s TTL`)
})
