import { createOctokit, createRedis } from '@portico/core'
import { startTestSimulator, type Teardown, testConfig } from '@portico/testing'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import app from '../src/app.js'
import { serverOptions } from '../src/server-options.js'
import { until } from './e2e.js'
import { freezingProxy, throughProxy } from './freezing-proxy.js'
import { build, signIn } from './helper.js'

// The pods listing cache is shared between API processes through Redis (issue 12): a second
// process serves a listing another one fetched without a counted GitHub call, still revalidating
// it with the caller's own token (a caller without access gets GitHub's answer, not the cache).
const { sim, env, tokenOf } = await startTestSimulator(t)
const counted = () => sim.ledger.count({ counted: true, kind: 'api' })

const first = await build(t, env)
// A second API process: same database, Redis prefix and secrets, its own memory.
const second = Fastify(serverOptions(first.config, false))
await second.register(app, { config: first.config })
await second.ready()
t.teardown(() => second.close())

t.test('a listing fetched by one process is warm in another', async (t) => {
  const { cookie } = await signIn(first, sim, 'octocat')
  sim.ledger.clear()
  const cold = await first.inject({ url: '/api/pods', headers: { cookie } })
  t.equal(cold.statusCode, 200)
  t.ok(counted() >= 1, `cold listing is counted (${counted()})`)

  sim.ledger.clear()
  const other = await second.inject({ url: '/api/pods', headers: { cookie } })
  t.equal(other.statusCode, 200)
  t.same(other.json(), cold.json())
  t.equal(counted(), 0, 'zero counted calls in the second process')
  t.ok(
    sim.ledger.entries({ kind: 'api' }).every((e) => e.status === 304 && e.conditional),
    'every call was a conditional 304 with the caller token',
  )
  const keys = await first.redis.keys(`${first.config.REDIS_PREFIX}:pods-cache:*`)
  t.ok(keys.length > 0, 'entries live in Redis')
  for (const key of keys) t.notMatch(String(await first.redis.get(key)), /gh[opsu]_/, 'no token in Redis')
})

t.test('the shared cache is still checked per caller', async (t) => {
  // hubot reads acme/infra-specs as a collaborator; take that away: the cached listing in Redis
  // must not be served to him.
  const { cookie } = await signIn(second, sim, 'hubot')
  t.equal((await first.inject({ url: '/api/pods', headers: { cookie } })).statusCode, 200)
  sim.addCollaborator('acme', 'infra-specs', 'hubot', null)
  t.teardown(() => sim.addCollaborator('acme', 'infra-specs', 'hubot', 'read'))
  const res = await second.inject({ url: '/api/pods', headers: { cookie } })
  t.equal(res.statusCode, 404)
  t.equal(res.json().code, 'SPECS_REPO_NOT_FOUND')
})

t.test('POST /api/refresh clears the shared entries too', async (t) => {
  const { cookie } = await signIn(first, sim, 'octocat')
  await first.inject({ url: '/api/pods', headers: { cookie } })
  t.ok((await first.redis.keys(`${first.config.REDIS_PREFIX}:pods-cache:*`)).length > 0)
  const res = await first.inject({
    method: 'POST',
    url: '/api/refresh',
    headers: { cookie, origin: new URL(first.config.PUBLIC_URL).origin },
  })
  t.equal(res.statusCode, 200)
  t.same(await first.redis.keys(`${first.config.REDIS_PREFIX}:pods-cache:*`), [])
  // `fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' } })` sends no
  // body: that is no body, as on `…/github/refresh` (a first-time user found 400 here).
  const jsonNoBody = await first.inject({
    method: 'POST',
    url: '/api/refresh',
    headers: { cookie, origin: new URL(first.config.PUBLIC_URL).origin, 'content-type': 'application/json' },
  })
  t.equal(jsonNoBody.statusCode, 200, jsonNoBody.body)
  t.same(jsonNoBody.json(), { message: 'Cache cleared' })
})

t.test('POST /api/refresh in one process ends every confirmed listing in the others', async (t) => {
  // A review's example: with PODS_REVALIDATE_SECONDS, a caller whose next read went to another
  // process was still served the listing from before the refresh, without GitHub being asked.
  const windowed = { ...env, PODS_REVALIDATE_SECONDS: '3600' }
  const one = await build(t, windowed)
  const two = Fastify(serverOptions(one.config, false))
  await two.register(app, { config: one.config })
  await two.ready()
  t.teardown(() => two.close())
  const { cookie } = await signIn(one, sim, 'octocat')
  const list = async (server: typeof one) =>
    ((await server.inject({ url: '/api/pods', headers: { cookie } })).json() as { customer: string }[]).map(
      (p) => p.customer,
    )
  t.notOk((await list(two)).includes('zeta'))
  sim.ledger.clear()
  t.notOk((await list(two)).includes('zeta'), 'confirmed: served again')
  t.equal(sim.ledger.entries({ kind: 'api' }).length, 0, 'without asking GitHub within the window')

  const bot = createOctokit({ token: tokenOf('portico-bot'), baseUrl: sim.apiUrl, retries: 0 })
  await bot.rest.repos.createOrUpdateFileContents({
    owner: 'acme',
    repo: 'infra-specs',
    path: 'infra/zeta/dev/spec.yml',
    message: 'test: zeta/dev',
    content: Buffer.from('customer: zeta\n').toString('base64'),
    branch: 'main',
  })
  const res = await one.inject({
    method: 'POST',
    url: '/api/refresh',
    headers: { cookie, origin: new URL(one.config.PUBLIC_URL).origin },
  })
  t.equal(res.statusCode, 200)
  // The other process hears of it through Redis: soon, not at once.
  let seen = false
  for (let i = 0; i < 100 && !seen; i++) {
    seen = (await list(two)).includes('zeta')
    if (!seen) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.ok(seen, 'the other process asks GitHub again and sees the new pod')
})

/** Adds a pod to the specs repository as the bot (not through Portico, so no refresh is sent). */
const addPod = async (customer: string) => {
  const bot = createOctokit({ token: tokenOf('portico-bot'), baseUrl: sim.apiUrl, retries: 0 })
  await bot.rest.repos.createOrUpdateFileContents({
    owner: 'acme',
    repo: 'infra-specs',
    path: `infra/${customer}/dev/spec.yml`,
    message: `test: ${customer}/dev`,
    content: Buffer.from(`customer: ${customer}\n`).toString('base64'),
    branch: 'main',
  })
}
const customers = async (server: FastifyInstance, cookie: string) =>
  ((await server.inject({ url: '/api/pods', headers: { cookie } })).json() as { customer: string }[]).map(
    (p) => p.customer,
  )
/** Lists until `customer` is there, or gives up after `timeoutMs`; whether it was seen. */
const untilListed = async (server: FastifyInstance, cookie: string, customer: string, timeoutMs: number) =>
  until(
    async () => ((await customers(server, cookie)).includes(customer) ? true : undefined),
    timeoutMs,
    customer,
  )
    .then(() => true)
    .catch(() => false)
const refreshChannel = (config: { REDIS_PREFIX: string }, db = 0) =>
  `${config.REDIS_PREFIX}:db${db}:pods-refresh`
/** A second API process on `config`: its own memory, same Redis and database. */
const processOn = async (t: Teardown, config: FastifyInstance['config']) => {
  const server = Fastify(serverOptions(config, false))
  await server.register(app, { config })
  await server.ready()
  t.teardown(() => server.close())
  return server
}
const windowed = { ...env, PODS_REVALIDATE_SECONDS: '3600' }

t.test('a refresh channel whose path goes dark stops confirmations within seconds', async (t) => {
  const base = await testConfig(t, windowed)
  const proxy = await freezingProxy(Number(new URL(base.REDIS_URL).port || 6379), 'portico-pods-refresh')
  t.teardown(() => proxy.close())
  const dark = await processOn(t, { ...base, REDIS_URL: throughProxy(base.REDIS_URL, proxy.port) })
  const lit = await processOn(t, base)
  t.equal(proxy.marked(), 1, 'the refresh subscriber goes through the proxy')
  const { cookie } = await signIn(dark, sim, 'octocat')
  await customers(dark, cookie)
  sim.ledger.clear()
  await customers(dark, cookie)
  t.equal(sim.ledger.entries({ kind: 'api' }).length, 0, 'confirmed: served without asking GitHub')

  proxy.freeze()
  await addPod('eta')
  const res = await lit.inject({
    method: 'POST',
    url: '/api/refresh',
    headers: { cookie, origin: new URL(base.PUBLIC_URL).origin },
  })
  t.equal(res.statusCode, 200)
  // The refresh is sent into the dark; the heartbeat notices and the confirmation is not trusted.
  t.ok(await untilListed(dark, cookie, 'eta', 5000), 'the new pod is seen within seconds, not after an hour')
})

t.test('a refresh sent while the subscriber reconnects is not missed', async (t) => {
  // Through a proxy, so that only this process's subscriber is cut (the Redis may be shared).
  const base = await testConfig(t, windowed)
  const proxy = await freezingProxy(Number(new URL(base.REDIS_URL).port || 6379), 'portico-pods-refresh')
  t.teardown(() => proxy.close())
  const one = await processOn(t, { ...base, REDIS_URL: throughProxy(base.REDIS_URL, proxy.port) })
  const { cookie } = await signIn(one, sim, 'octocat')
  await customers(one, cookie)
  await customers(one, cookie)
  const redis = createRedis(base.REDIS_URL, 'worker')
  t.teardown(() => redis.quit())
  await addPod('theta')
  t.equal(proxy.marked(), 1, 'the subscriber is connected')
  // Cut and the refresh published at once: nobody from this process is there to hear it.
  proxy.cut()
  await redis.publish(refreshChannel(base), 'another-process')
  // Back and live: a listing is served from a confirmation again, without asking GitHub.
  const confirmed = await until(
    async () => {
      sim.ledger.clear()
      const listed = await customers(one, cookie)
      return sim.ledger.entries({ kind: 'api' }).length === 0 ? listed : undefined
    },
    5000,
    'a confirmed listing again',
  )
  t.equal(proxy.marked(), 1, 'on a new subscriber connection')
  t.ok(confirmed.includes('theta'), 'the confirmed listing has the pod added while it was away')
})

t.test('the refresh channel is per Redis database: pub/sub ignores the number', async (t) => {
  const zero = await build(t, windowed)
  const url = new URL(zero.config.REDIS_URL)
  url.pathname = '/1'
  // Torn down before the process (teardowns run last first): what it kept in database 1 goes too.
  const cleaner = createRedis(url.toString(), 'worker')
  t.teardown(async () => {
    const keys = await cleaner.keys(`${zero.config.REDIS_PREFIX}*`)
    if (keys.length > 0) await cleaner.del(...keys)
    await cleaner.quit()
  })
  const one = await processOn(t, { ...zero.config, REDIS_URL: url.toString() })
  t.not(refreshChannel(zero.config), refreshChannel(one.config, 1))
  const { cookie } = await signIn(zero, sim, 'octocat')
  await customers(zero, cookie)
  const listen = createRedis(zero.config.REDIS_URL, 'worker')
  t.teardown(() => listen.disconnect())
  const heard: string[] = []
  listen.on('message', (channel: string) => heard.push(channel))
  await listen.subscribe(refreshChannel(zero.config), refreshChannel(one.config, 1))

  const { cookie: other } = await signIn(one, sim, 'octocat')
  const res = await one.inject({
    method: 'POST',
    url: '/api/refresh',
    headers: { cookie: other, origin: new URL(one.config.PUBLIC_URL).origin },
  })
  t.equal(res.statusCode, 200)
  await until(async () => (heard.length > 0 ? true : undefined), 5000, 'the refresh to be published')
  t.same(heard, [refreshChannel(one.config, 1)], 'published on database 1 channel only')
  sim.ledger.clear()
  await customers(zero, cookie)
  t.equal(sim.ledger.entries({ kind: 'api' }).length, 0, 'database 0 kept its confirmation')
})

t.test('a refresh Redis will not pass on is still a refresh: 200, not 500', async (t) => {
  // A review: with a Redis user without pub/sub permission, POST /api/refresh answered 500
  // although this process had already forgotten everything.
  const base = await testConfig(t, windowed)
  const admin = createRedis(base.REDIS_URL, 'worker')
  t.teardown(() => admin.quit())
  const user = `portico-test-nopubsub-${process.pid}-${Date.now()}`
  await admin.call('ACL', 'SETUSER', user, 'on', 'nopass', '~*', 'resetchannels', '+@all')
  t.teardown(() => admin.call('ACL', 'DELUSER', user))
  const url = new URL(base.REDIS_URL)
  url.username = user
  url.password = 'x'
  const server = await processOn(t, { ...base, REDIS_URL: url.toString() })
  const { cookie } = await signIn(server, sim, 'octocat')
  t.equal((await server.inject({ url: '/api/pods', headers: { cookie } })).statusCode, 200)
  const res = await server.inject({
    method: 'POST',
    url: '/api/refresh',
    headers: { cookie, origin: new URL(base.PUBLIC_URL).origin },
  })
  t.equal(res.statusCode, 200, res.body)
  t.same(res.json(), { message: 'Cache cleared' })
})
