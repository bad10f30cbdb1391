import { Writable } from 'node:stream'
import { AppError, loggerOptions } from '@portico/core'
import { startTestSimulator, type Teardown, testConfig } from '@portico/testing'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import app from '../../src/app.js'
import { serverOptions } from '../../src/server-options.js'
import { build, signIn } from '../helper.js'

// One simulator for the whole file; each test builds its own app (database, queue prefix).
const { sim, env } = await startTestSimulator(t)

/** Test-only routes exercising request.github() and the org gate. */
function routes(server: FastifyInstance) {
  server.get('/test/actor', async (request) => {
    const actor = await request.github()
    return { source: actor.source, login: actor.login, userId: actor.userId }
  })
  // A write: never the service account, whatever the configuration.
  server.post('/test/actor', async (request) => {
    const actor = await request.github()
    return { source: actor.source }
  })
  server.get('/test/actor-user', async (request) => {
    const actor = await request.github({ requireUser: true })
    return { source: actor.source, login: actor.login }
  })
  server.get('/test/gate/:owner', async (request) => {
    const { owner } = request.params as { owner: string }
    const { private: priv } = request.query as { private?: string }
    await server.assertOrgAccess(await request.github(), { owner, private: priv === '1' })
    return { ok: true }
  })
  server.get('/test/repo/:owner/:repo', async (request) => {
    const { owner, repo } = request.params as { owner: string; repo: string }
    const actor = await request.github()
    const { data } = await actor.octokit.rest.repos.get({ owner, repo }).catch((err) => {
      throw new AppError(404, 'REPO_NOT_FOUND', 'Repository not found.', { cause: err })
    })
    await server.assertOrgAccess(actor, { owner: data.owner.login, private: data.private })
    return { full_name: data.full_name }
  })
}

const FALLBACK = { ...env, ALLOW_SERVICE_TOKEN_FALLBACK: 'true' }

t.test('service-token fallback on and off', async (t) => {
  await t.test('on: anonymous reads act as GH_TOKEN, anonymous writes never do', async (t) => {
    const server = await build(t, FALLBACK, routes)
    const res = await server.inject({ url: '/test/actor' })
    t.same(res.json(), { source: 'service', login: null, userId: null })
    const write = await server.inject({ method: 'POST', url: '/test/actor' })
    t.equal(write.statusCode, 401, 'anonymous write refused')
    t.equal(write.json().code, 'NOT_AUTHENTICATED')
    const strict = await server.inject({ url: '/test/actor-user' })
    t.equal(strict.statusCode, 401, 'requireUser never falls back')
    t.equal(strict.json().code, 'NOT_AUTHENTICATED')
    const { cookie } = await signIn(server, sim, 'hubot')
    const user = await server.inject({ url: '/test/actor', headers: { cookie } })
    t.match(user.json(), { source: 'user', login: 'hubot', userId: /^[0-9a-f-]{36}$/ })
    t.same((await server.inject({ url: '/test/actor-user', headers: { cookie } })).json(), {
      source: 'user',
      login: 'hubot',
    })
  })

  await t.test('off (default): anonymous requests get 401', async (t) => {
    const server = await build(t, env, routes)
    const res = await server.inject({ url: '/test/actor' })
    t.equal(res.statusCode, 401)
    t.equal(res.json().code, 'NOT_AUTHENTICATED')
    const { cookie } = await signIn(server, sim, 'octocat')
    t.equal((await server.inject({ url: '/test/actor', headers: { cookie } })).json().source, 'user')
    const write = await server.inject({
      method: 'POST',
      url: '/test/actor',
      headers: { cookie, origin: new URL(server.config.PUBLIC_URL).origin },
    })
    t.same(write.json(), { source: 'user' }, 'a signed-in write acts as the user')
  })

  await t.test('on but no GH_TOKEN: 401', async (t) => {
    const server = await build(t, { ...FALLBACK, GH_TOKEN: '' }, routes)
    t.equal((await server.inject({ url: '/test/actor' })).statusCode, 401)
  })
})

t.test('org gate (ACCESS_ORG=acme)', async (t) => {
  const server = await build(t, { ...env, ACCESS_ORG: 'acme' }, routes)
  const octocat = (await signIn(server, sim, 'octocat')).cookie
  const hubot = (await signIn(server, sim, 'hubot')).cookie
  const monalisa = (await signIn(server, sim, 'monalisa')).cookie
  const gate = (query: string, cookie?: string) =>
    server.inject({ url: `/test/gate/${query}`, headers: cookie ? { cookie } : {} })

  await t.test('active member passes; the answer is cached per user', async (t) => {
    sim.ledger.clear()
    t.equal((await gate('acme?private=1', octocat)).statusCode, 200)
    t.equal((await gate('acme?private=1', octocat)).statusCode, 200)
    t.equal(sim.ledger.count({ route: 'GET /user/memberships/orgs/{org}' }), 1, 'one membership check')
  })

  await t.test('non-member refused, even where GitHub itself would allow the read', async (t) => {
    // hubot is a read collaborator of acme/infra-specs but not an acme member.
    const res = await server.inject({ url: '/test/repo/acme/infra-specs', headers: { cookie: hubot } })
    t.equal(res.statusCode, 403)
    t.equal(res.json().code, 'ORG_MEMBERSHIP_REQUIRED')
    t.equal((await gate('acme?private=1', hubot)).json().code, 'ORG_MEMBERSHIP_REQUIRED')
  })

  await t.test('pending member refused', async (t) => {
    const res = await gate('acme?private=1', monalisa)
    t.equal(res.statusCode, 403)
    t.equal(res.json().code, 'ORG_MEMBERSHIP_REQUIRED')
  })

  await t.test('member reads the private org repo', async (t) => {
    const res = await server.inject({ url: '/test/repo/acme/infra-specs', headers: { cookie: octocat } })
    t.same(res.json(), { full_name: 'acme/infra-specs' })
  })

  await t.test('public repos and other owners are not gated', async (t) => {
    t.equal((await gate('acme', hubot)).statusCode, 200, 'public acme repo')
    t.equal((await gate('octocat?private=1', hubot)).statusCode, 200, 'private repo of another owner')
    t.same(
      (await server.inject({ url: '/test/repo/octocat/hello-world', headers: { cookie: monalisa } })).json(),
      {
        full_name: 'octocat/hello-world',
      },
    )
  })

  await t.test("the service token never passes the gate on a visitor's behalf", async (t) => {
    const fallback = await build(t, { ...FALLBACK, ACCESS_ORG: 'acme' }, routes)
    // portico-bot (GH_TOKEN) is an active acme member; an anonymous visitor is not.
    const res = await fallback.inject({ url: '/test/gate/acme?private=1' })
    t.equal(res.statusCode, 401)
    t.equal(res.json().code, 'NOT_AUTHENTICATED')
    const repo = await fallback.inject({ url: '/test/repo/acme/infra-specs' })
    t.equal(repo.statusCode, 401, 'reading a private ACCESS_ORG repo anonymously is refused')
    t.equal((await fallback.inject({ url: '/test/gate/acme' })).statusCode, 200, 'public repos stay open')
  })

  await t.test('without ACCESS_ORG nothing is gated', async (t) => {
    const open = await build(t, env, routes)
    const cookie = (await signIn(open, sim, 'hubot')).cookie
    t.equal((await open.inject({ url: '/test/gate/acme?private=1', headers: { cookie } })).statusCode, 200)
  })
})

/** Builds the app with a logger writing JSON lines into `lines`. */
async function buildLogged(t: Teardown, env: Record<string, string>, lines: string[]) {
  const config = await testConfig(t, { ...env, LOG_LEVEL: 'warn' })
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk))
      cb()
    },
  })
  const server = Fastify(serverOptions(config, { ...loggerOptions('warn'), stream }))
  await server.register(app, { config })
  await server.ready()
  t.teardown(() => server.close())
  return server
}

t.test('production start-up warns about the fallback and OPERATOR_LOGINS', async (t) => {
  const production = {
    ...env,
    NODE_ENV: 'production',
    SESSION_SECRET: 'a-production-like-session-secret-of-32-chars',
    TOKEN_ENCRYPTION_KEYS: `k1:${Buffer.alloc(32, 3).toString('base64')}`,
  }
  const warned: string[] = []
  await buildLogged(
    t,
    { ...production, ALLOW_SERVICE_TOKEN_FALLBACK: 'true', OPERATOR_LOGINS: 'octocat' },
    warned,
  )
  t.match(warned.join(''), /ALLOW_SERVICE_TOKEN_FALLBACK is on/)
  t.match(warned.join(''), /OPERATOR_LOGINS is deprecated/)
  // A trial: production on the development default PUBLIC_URL started without a word.
  t.match(warned.join(''), /PUBLIC_URL is not https in production/)
  const quiet: string[] = []
  await buildLogged(
    t,
    { ...production, OPERATOR_GITHUB_IDS: '583231', PUBLIC_URL: 'https://portico.example.com' },
    quiet,
  )
  t.notMatch(quiet.join(''), /ALLOW_SERVICE_TOKEN_FALLBACK|OPERATOR_LOGINS|PUBLIC_URL/)
})
