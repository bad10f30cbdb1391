import { loggerOptions } from '@portico/core'
import { insertConnection } from '@portico/db'
import { startTestSimulator, testConfig } from '@portico/testing'
import Fastify from 'fastify'
import { sql } from 'kysely'
import t from 'tap'
import apiApp from '../src/app.js'
import { serverOptions } from '../src/server-options.js'
import { until } from './e2e.js'
import { freezingProxy, throughProxy } from './freezing-proxy.js'
import { build, createTenantWithProject, signIn, writeHeaders } from './helper.js'

// API_READ_CACHE_MS: project access and connection status answered from memory, dropped when
// Postgres reports a change (LISTEN/NOTIFY). A TTL of a minute means only a notice can explain
// a change seen within the test.
const { sim, env } = await startTestSimulator(t)
const app = await build(t, { ...env, API_READ_CACHE_MS: '60000' })
const owner = await signIn(app, sim, 'octocat')
const { tenant, project } = await createTenantWithProject(app, owner.cookie)
const connection = await insertConnection(app.db, {
  tenant_id: tenant.id,
  project_id: project.id,
  repo_url: `${sim.url}/acme/sample-app`,
  owner: 'acme',
  repo: 'sample-app',
  encrypted_token: null,
})
const status = () =>
  app.inject({
    method: 'GET',
    url: `/api/v1/projects/${project.id}/github`,
    headers: { cookie: owner.cookie },
  })

/** Polls `check` (up to 5 s) until it holds; fails the test otherwise. */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.fail(`never: ${what}`)
}

/** The backend that LISTENs for this app's database, if any. */
const listenerPid = async () =>
  (
    await sql<{ pid: number }>`select pid from pg_stat_activity
      where datname = current_database() and application_name = 'portico-change-listener'`.execute(app.db)
  ).rows[0]?.pid

// The listener connects in the background after start-up; reads are cached once it is in place.
await eventually('the change listener is in place', async () => (await listenerPid()) !== undefined)

t.test('a repeated status read is answered from memory, with the same body', async (t) => {
  const first = await status()
  t.equal(first.statusCode, 200)
  // A notice still in flight from the setup (the connection's insert) may discard the first fill;
  // once the entries are kept, a read is two hits: the project access and the connection view.
  let second = first
  await eventually('a read answered from memory', async () => {
    const hits = app.readCache.stats.hits
    second = await status()
    return app.readCache.stats.hits === hits + 2
  })
  t.equal(second.statusCode, 200)
  t.same(second.json(), first.json())
})

t.test('concurrent reads that miss share one query per entry', async (t) => {
  // An entry expiring under polling load used to send one query per request waiting on it. A
  // round during which the listener's check ran late (a loaded machine) bypasses the cache, by
  // design, and proves nothing: such a round is run again.
  let round: { statuses: number[]; bodies: number; misses: number; hits: number } | undefined
  await eventually('a round of reads with the change listener live throughout', async () => {
    app.readCache.clear()
    const before = { ...app.readCache.stats }
    const answers = await Promise.all(Array.from({ length: 20 }, () => status()))
    if (app.readCache.stats.bypasses !== before.bypasses) return false
    round = {
      statuses: answers.map((r) => r.statusCode),
      bodies: new Set(answers.map((r) => r.body)).size,
      misses: app.readCache.stats.misses - before.misses,
      hits: app.readCache.stats.hits - before.hits,
    }
    return true
  })
  t.same(round?.statuses, Array(20).fill(200))
  t.equal(round?.bodies, 1, 'every read got the same body')
  t.equal(round?.misses, 2, 'one query for the access, one for the view')
  t.equal(round?.hits, 38, 'the other reads shared them')
})

t.test('a change written elsewhere (a job, another process) is seen once Postgres reports it', async (t) => {
  await status()
  await app.db
    .updateTable('github_connections')
    .set({ progress: 77 })
    .where('id', '=', connection.id)
    .execute()
  await eventually('the new progress is read', async () => (await status()).json().progress === 77)
  t.equal((await status()).json().progress, 77)
})

t.test('a body answered from memory still tells the token status as of now', async (t) => {
  // Expiring in 1.5 s: the same cached view turns `expired` with time alone, no change written.
  const expiresAt = new Date(Date.now() + 1500)
  await app.db
    .updateTable('github_connections')
    .set({ token_expires_at: expiresAt })
    .where('id', '=', connection.id)
    .execute()
  let before = await status()
  await eventually('the expiry is read from memory', async () => {
    const misses = app.readCache.stats.misses
    before = await status()
    return before.json().token_status === 'expiring' && app.readCache.stats.misses === misses
  })
  const misses = app.readCache.stats.misses
  t.equal(before.headers['content-type'], 'application/json; charset=utf-8')
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt.getTime() - Date.now() + 50)))
  const after = await status()
  t.equal(app.readCache.stats.misses, misses, 'both reads were answered from memory')
  t.equal(after.json().token_status, 'expired')
  t.same({ ...after.json(), token_status: 'expiring' }, before.json(), 'nothing else changed')
  await app.db
    .updateTable('github_connections')
    .set({ token_expires_at: null })
    .where('id', '=', connection.id)
    .execute()
  await eventually('the expiry is gone', async () => (await status()).json().token_status === 'valid')
})

t.test('removed access ends at once: the project is no longer found', async (t) => {
  const member = await signIn(app, sim, 'hubot')
  await app.db
    .insertInto('tenant_members')
    .values({
      tenant_id: tenant.id,
      user_id: (
        await app.db.selectFrom('users').select('id').where('login', '=', 'hubot').executeTakeFirstOrThrow()
      ).id,
      role: 'admin',
    })
    .execute()
  const read = () =>
    app.inject({
      method: 'GET',
      url: `/api/v1/projects/${project.id}/github`,
      headers: { cookie: member.cookie },
    })
  await eventually('the new member reads the status', async () => (await read()).statusCode === 200)
  await read()
  await app.db
    .deleteFrom('tenant_members')
    .where('tenant_id', '=', tenant.id)
    .where('role', '=', 'admin')
    .execute()
  await eventually('the removed member is refused', async () => (await read()).statusCode === 404)
  t.equal((await read()).json().code, 'PROJECT_NOT_FOUND')
})

t.test('a project deleted while its access is cached is 404, not a 500', async (t) => {
  // A review's example: the project read trusted the cached access and failed its schema.
  const { project: doomed } = await createTenantWithProject(app, owner.cookie)
  const read = () =>
    app.inject({ method: 'GET', url: `/api/v1/projects/${doomed.id}`, headers: { cookie: owner.cookie } })
  t.equal((await read()).statusCode, 200)
  await eventually('the access is answered from memory', async () => {
    const hits = app.readCache.stats.hits
    await read()
    return app.readCache.stats.hits > hits
  })
  // Deleted with its notice lost (no trigger fires for this transaction), as when the change
  // listener's connection drops at that moment: the cached access outlives the project.
  await app.db.transaction().execute(async (trx) => {
    await sql`set local session_replication_role = replica`.execute(trx)
    await trx.deleteFrom('projects').where('id', '=', doomed.id).execute()
  })
  const res = await read()
  t.equal(res.statusCode, 404)
  t.equal(res.json().code, 'PROJECT_NOT_FOUND')
})

t.test('while the change listener is down, reads go to Postgres; then caching resumes', async (t) => {
  await status()
  const pid = await listenerPid()
  t.ok(pid)
  await sql`select pg_terminate_backend(${pid})`.execute(app.db)
  // Until it is back, nothing is answered from memory: a change is seen on the next read.
  await eventually('the listener is gone', async () => (await listenerPid()) !== pid)
  await app.db
    .updateTable('github_connections')
    .set({ progress: 12 })
    .where('id', '=', connection.id)
    .execute()
  if ((await listenerPid()) === undefined) t.equal((await status()).json().progress, 12)
  await eventually('the listener is back', async () => (await listenerPid()) !== undefined)
  await status()
  const hits = app.readCache.stats.hits
  await eventually('reads are answered from memory again', async () => {
    await status()
    return app.readCache.stats.hits > hits
  })
  t.equal((await status()).json().progress, 12)
})

t.test('API_READ_CACHE_MS=0: nothing is cached and nothing listens', async (t) => {
  const plain = await build(t, { ...env, API_READ_CACHE_MS: '0' })
  const user = await signIn(plain, sim, 'octocat')
  const made = await createTenantWithProject(plain, user.cookie)
  const read = () =>
    plain.inject({
      method: 'GET',
      url: `/api/v1/projects/${made.project.id}/github`,
      headers: { cookie: user.cookie },
    })
  t.equal((await read()).statusCode, 404)
  t.equal((await read()).statusCode, 404)
  t.same(plain.readCache.stats, { hits: 0, misses: 0, bypasses: 0 })
  const listeners = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
    where datname = current_database() and application_name = 'portico-change-listener'`.execute(plain.db)
  t.equal(listeners.rows[0]?.n, 0)
})

t.test(
  'writes: anonymous or refused ones keep the cache, a signed-in one that may have changed something empties it',
  async (t) => {
    await status()
    await status()
    const postTenant = (payload: Record<string, string>) =>
      app.inject({
        method: 'POST',
        url: '/api/v1/tenants',
        headers: writeHeaders(app, owner.cookie),
        payload,
      })
    let misses = app.readCache.stats.misses
    t.equal((await app.inject({ method: 'POST', url: '/no/such/route' })).statusCode, 404)
    await status()
    t.equal(app.readCache.stats.misses, misses, 'an anonymous POST changes nothing cached')
    const refused = await postTenant({ slug: '' })
    t.equal(refused.statusCode, 400)
    await status()
    t.equal(app.readCache.stats.misses, misses, 'a refused write changes nothing cached')
    const made = await postTenant({ slug: 'another', name: 'Another' })
    t.equal(made.statusCode, 201)
    misses = app.readCache.stats.misses
    await status()
    t.ok(app.readCache.stats.misses > misses, 'the next read goes to Postgres')
  },
)

t.test('a listener whose path goes dark without closing stops the cache within seconds', async (t) => {
  const base = await testConfig(t, { ...env, API_READ_CACHE_MS: '60000' })
  const proxy = await freezingProxy(Number(new URL(base.DATABASE_URL).port || 5432), 'LISTEN portico_changes')
  t.teardown(() => proxy.close())
  const config = { ...base, DATABASE_URL: throughProxy(base.DATABASE_URL, proxy.port) }
  const server = Fastify(serverOptions(config, false))
  await server.register(apiApp, { config })
  await server.ready()
  t.teardown(() => server.close())
  const user = await signIn(server, sim, 'octocat')
  const made = await createTenantWithProject(server, user.cookie)
  await eventually('the listener goes through the proxy', async () => proxy.marked() === 1)
  const read = () =>
    server.inject({ url: `/api/v1/projects/${made.project.id}/github`, headers: { cookie: user.cookie } })
  // The project has no connection yet: a member is answered CONNECTION_NOT_FOUND, a non-member
  // PROJECT_NOT_FOUND (the access check comes first).
  const code = async () => (await read()).json().code as string
  await eventually('reads are answered from memory', async () => {
    const hits = server.readCache.stats.hits
    const answer = await code()
    return server.readCache.stats.hits > hits && answer === 'CONNECTION_NOT_FOUND'
  })
  proxy.freeze()
  // Revoked by someone else: the notice goes into the dark.
  await server.db.deleteFrom('tenant_members').where('tenant_id', '=', made.tenant.id).execute()
  const started = Date.now()
  await eventually('the revoked member is refused', async () => (await code()) === 'PROJECT_NOT_FOUND')
  t.ok(Date.now() - started < 5000, 'within seconds, not after the 60 s TTL')
  // Until the listener is back, reads go to Postgres, and are counted as such.
  const bypasses = server.readCache.stats.bypasses
  const hits = server.readCache.stats.hits
  t.equal(await code(), 'PROJECT_NOT_FOUND')
  t.ok(server.readCache.stats.bypasses > bypasses, 'counted as a bypass')
  t.equal(server.readCache.stats.hits, hits, 'not a hit')
})

t.test('a Postgres outage is logged once per cause, however many reconnection attempts fail', async (t) => {
  // A new user's trial: every failed attempt (250 ms doubling to 30 s) logged a warning and a
  // stack, and a second line saying the cache was off.
  const base = await testConfig(t, { ...env, API_READ_CACHE_MS: '60000' })
  const proxy = await freezingProxy(Number(new URL(base.DATABASE_URL).port || 5432), 'LISTEN portico_changes')
  t.teardown(() => proxy.close())
  const config = { ...base, DATABASE_URL: throughProxy(base.DATABASE_URL, proxy.port) }
  const lines: { level: number; msg: string; err?: { code?: string; message: string } }[] = []
  const server = Fastify(
    serverOptions(config, {
      ...loggerOptions('info'),
      stream: { write: (line: string) => void lines.push(JSON.parse(line)) },
    }),
  )
  await server.register(apiApp, { config })
  await server.ready()
  t.teardown(() => server.close())
  await eventually('the listener goes through the proxy', async () => proxy.marked() === 1)
  const about = () => lines.filter((l) => /read cache/.test(l.msg))
  const warnings = () => about().filter((l) => l.level === 40)
  proxy.down()
  // The connection is lost (one cause), then each attempt is reset (another).
  await eventually('three reconnection attempts fail', async () => proxy.refused() >= 3)
  const causes = warnings().map((l) => l.err?.code ?? l.err?.message)
  t.ok(causes.length >= 1 && causes.length <= 2, `one or two warnings: ${JSON.stringify(causes)}`)
  t.equal(new Set(causes).size, causes.length, 'one per cause')
  t.ok(
    warnings().every((l) => l.msg === 'read cache off until the change listener reconnects'),
    'saying the cache is off',
  )
  t.equal(causes.at(-1), 'ECONNRESET', 'the attempts are reset: said once')
  proxy.up()
  // The next attempt may be seconds away (the backoff doubles).
  await until(
    async () => (about().some((l) => l.level === 30) ? true : undefined),
    30_000,
    'its return to be logged',
  )
  t.same(
    about().map((l) => `${l.level} ${l.msg}`),
    [
      ...causes.map(() => '40 read cache off until the change listener reconnects'),
      '30 read cache back on: the change listener reconnected',
    ],
    'then one line when it is back',
  )
})
