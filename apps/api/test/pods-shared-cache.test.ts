import { createOctokit } from '@portico/core'
import { startTestSimulator } from '@portico/testing'
import Fastify from 'fastify'
import t from 'tap'
import app from '../src/app.js'
import { serverOptions } from '../src/server-options.js'
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
