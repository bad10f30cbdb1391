// Connections over their life (issue 14): refresh, PAT replacement and token_status, through the
// routes (no worker here: a refresh stays queued, which is what "one in flight" is about).
import { decrypt, refreshDedupId } from '@portico/core'
import { findConnection } from '@portico/db'
import { refusalFault } from '@portico/github-sim'
import { startTestSimulator } from '@portico/testing'
import t, { type Test } from 'tap'
import {
  addProjectMember,
  addTenantMember,
  build,
  createTenantWithProject,
  signIn,
  writeHeaders,
} from './helper.js'

const { sim, env, tokenOf } = await startTestSimulator(t)
const PAT = tokenOf('octocat')
const REPO_URL = `${sim.url}/acme/sample-app`
const SAMPLE_APP_ID = 700002
const OLD_SHA = 'a'.repeat(40)

// Tests may take Redis away in the middle of a request (after the session was read).
const app = await build(t, env, (app) => {
  app.addHook('preHandler', async (request) => {
    if (request.headers['x-test-redis'] === 'down') app.redis.disconnect()
  })
})
const owner = await signIn(app, sim, 'octocat')
const { tenant, project } = await createTenantWithProject(app, owner.cookie)
const github = `/api/v1/projects/${project.id}/github`

const call = (
  method: 'POST' | 'PATCH' | 'GET',
  path: string,
  body?: unknown,
  cookie = owner.cookie,
  extra = {},
) =>
  app.inject({
    method,
    url: path,
    headers: method === 'GET' ? { cookie } : { ...writeHeaders(app, cookie), ...extra },
    ...(body === undefined ? {} : { payload: body as Record<string, unknown> }),
  })
const refresh = (body?: unknown, cookie = owner.cookie, extra = {}) =>
  call('POST', `${github}/refresh`, body, cookie, extra)
const patch = (body: unknown, cookie = owner.cookie) => call('PATCH', github, body, cookie)

/** The clone queue's jobs of one connection, whatever their state. */
async function jobsOf(connectionId: string) {
  const jobs = await app.queues.clone.getJobs(['waiting', 'delayed', 'active', 'prioritized'])
  return jobs.filter((j) => j?.data.connectionId === connectionId)
}

/** A connection as the worker leaves it after an analysis (no worker runs in this file). */
async function analyzedConnection(t: Test, changes: Record<string, unknown> = {}) {
  const res = await call('POST', github, { repo_url: REPO_URL, pat: PAT })
  t.equal(res.statusCode, 201, res.body)
  const id = res.json().id as string
  await app.queues.clone.obliterate({ force: true })
  await app.db
    .updateTable('github_connections')
    .set({
      status: 'analyzed',
      progress: 100,
      commit_sha: OLD_SHA,
      routes_count: 10,
      components_count: 3,
      endpoints_count: 10,
      analysis_summary: JSON.stringify({
        frameworks: ['express'],
        routes: [],
        components: [],
        endpoints: 10,
      }),
      ...changes,
    })
    .where('id', '=', id)
    .execute()
  t.teardown(async () => {
    await app.db.deleteFrom('github_connections').where('project_id', '=', project.id).execute()
    await app.queues.clone.obliterate({ force: true })
  })
  return id
}

t.test('no connection: 404 CONNECTION_NOT_FOUND for refresh and PATCH', async (t) => {
  for (const res of [await refresh(), await patch({ pat: PAT })]) {
    t.equal(res.statusCode, 404, res.body)
    t.equal(res.json().code, 'CONNECTION_NOT_FOUND')
  }
})

t.test('refresh → 202 queued, previous analysis unchanged, one job with ids only', async (t) => {
  const id = await analyzedConnection(t)
  const res = await refresh()
  t.equal(res.statusCode, 202, res.body)
  const body = res.json()
  t.equal(body.status, 'analyzed', 'the status stays until the refresh lands')
  t.equal(body.commit_sha, OLD_SHA, 'commit_sha changes only when the new analysis lands')
  t.equal(body.routes_count, 10)
  t.equal(body.analysis_summary.endpoints, 10)
  t.equal(body.refresh_status, 'queued')
  t.ok(body.refresh_requested_at)
  t.equal(body.token_status, 'valid')
  const jobs = await jobsOf(id)
  t.equal(jobs.length, 1)
  t.same(jobs[0]?.data, { connectionId: id, refresh: true, requestId: jobs[0]?.data.requestId })
  t.equal(await app.queues.clone.getDeduplicationJobId(refreshDedupId(id)), jobs[0]?.id)

  t.test('a second refresh returns the one in flight, no second job', async (t) => {
    const again = await refresh({})
    t.equal(again.statusCode, 202, again.body)
    t.equal(again.json().refresh_status, 'queued')
    t.equal(again.json().refresh_requested_at, body.refresh_requested_at, 'the same refresh')
    t.equal((await jobsOf(id)).length, 1)
    // What a frontend's fetch sends for a body-less POST: a JSON content type and no body.
    const bare = await app.inject({
      method: 'POST',
      url: `${github}/refresh`,
      headers: { ...writeHeaders(app, owner.cookie), 'content-type': 'application/json' },
    })
    t.equal(bare.statusCode, 202, bare.body)
    const broken = await app.inject({
      method: 'POST',
      url: `${github}/refresh`,
      headers: { ...writeHeaders(app, owner.cookie), 'content-type': 'application/json' },
      body: '{"pat":',
    })
    t.equal(broken.statusCode, 400, 'a body that is not JSON is still a 400')
    // Concurrent requests: still one job.
    const burst = await Promise.all(Array.from({ length: 10 }, () => refresh()))
    t.same(new Set(burst.map((r) => r.statusCode)), new Set([202]))
    t.equal((await jobsOf(id)).length, 1)
  })

  t.test('a refresh marked in flight whose job was lost is enqueued again', async (t) => {
    await app.queues.clone.obliterate({ force: true })
    t.equal((await jobsOf(id)).length, 0)
    const res = await refresh()
    t.equal(res.statusCode, 202)
    t.equal((await jobsOf(id)).length, 1, 'a new job holds the refresh')
  })
})

t.test('refresh while the first clone runs → 409 CLONE_IN_PROGRESS', async (t) => {
  await analyzedConnection(t, { status: 'cloning', commit_sha: null })
  const res = await refresh()
  t.equal(res.statusCode, 409)
  t.equal(res.json().code, 'CLONE_IN_PROGRESS')
})

t.test('Redis down → 503 QUEUE_UNAVAILABLE and no refresh left claiming to be queued', async (t) => {
  const id = await analyzedConnection(t)
  const res = await refresh(undefined, owner.cookie, { 'x-test-redis': 'down' })
  t.equal(res.statusCode, 503, res.body)
  t.equal(res.json().code, 'QUEUE_UNAVAILABLE')
  const row = await findConnection(app.db, id)
  t.equal(row?.refresh_status, 'failed')
  t.equal(row?.refresh_error_code, 'QUEUE_UNAVAILABLE')
  t.equal(row?.commit_sha, OLD_SHA)
  await app.redis.connect().catch(() => {})
  for (let i = 0; i < 100 && app.redis.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 50))
  const retry = await refresh()
  t.equal(retry.statusCode, 202, 'a failed refresh can be requested again')
  t.equal(retry.json().refresh_status, 'queued')
  t.equal(retry.json().refresh_error_code, null)
})

t.test('Redis down during a refresh with a PAT of an ended connection: the PAT is not kept', async (t) => {
  const id = await analyzedConnection(t, {
    status: 'failed',
    encrypted_token: null,
    error_code: 'CLONE_FAILED',
  })
  const res = await refresh({ pat: PAT }, owner.cookie, { 'x-test-redis': 'down' })
  t.equal(res.statusCode, 503, res.body)
  t.equal(res.json().code, 'QUEUE_UNAVAILABLE')
  const row = await findConnection(app.db, id)
  t.equal(row?.status, 'failed')
  t.equal(row?.refresh_status, 'failed')
  t.equal(row?.encrypted_token, null, 'no token kept on an ended connection')
  await app.redis.connect().catch(() => {})
  for (let i = 0; i < 100 && app.redis.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 50))
  const again = await refresh({ pat: PAT })
  t.equal(again.statusCode, 202, 'the same PAT can be sent again')
})

t.test('an ended connection keeps no token: refresh needs a PAT in the body', async (t) => {
  for (const status of ['failed', 'expired'] as const) {
    t.test(status, async (t) => {
      const id = await analyzedConnection(t, {
        status,
        encrypted_token: null,
        error_code: status === 'failed' ? 'CLONE_FAILED' : null,
      })
      const bare = await refresh()
      t.equal(bare.statusCode, 409, bare.body)
      t.equal(bare.json().code, 'TOKEN_REQUIRED')
      t.match(bare.json().message, /Send a PAT in the body/)
      t.equal((await jobsOf(id)).length, 0)

      const wrong = await refresh({ pat: 'ghp_notarealtoken0000000000000000000000' })
      t.equal(wrong.statusCode, 400)
      t.equal(wrong.json().code, 'INVALID_TOKEN')
      t.equal((await findConnection(app.db, id))?.encrypted_token, null, 'a refused PAT is not stored')

      const res = await refresh({ pat: ` ${PAT} ` })
      t.equal(res.statusCode, 202, res.body)
      t.equal(res.json().status, status, 'still ended until the refresh lands')
      t.equal(res.json().refresh_status, 'queued')
      const row = await findConnection(app.db, id)
      t.equal(
        decrypt(app.config.keyring, String(row?.encrypted_token)),
        PAT,
        'stored encrypted for the refresh',
      )
      t.notOk(JSON.stringify(res.json()).includes(PAT), 'never returned')
      t.equal((await jobsOf(id)).length, 1)
    })
  }
})

t.test('PATCH {pat} replaces the token of the same repository, analysis kept', async (t) => {
  const id = await analyzedConnection(t)
  const before = await findConnection(app.db, id)
  const expiring = `ghp_expiring${Date.now().toString(36)}`.padEnd(40, '0')
  const inThreeDays = new Date(Date.now() + 3 * 24 * 3600_000)
  inThreeDays.setMilliseconds(0)
  sim.addToken('octocat', expiring, { scopes: ['repo'], expiresAt: inThreeDays.toISOString() })

  const res = await patch({ pat: `  ${expiring}\n` })
  t.equal(res.statusCode, 200, res.body)
  const body = res.json()
  t.equal(body.token_status, 'expiring', 'GitHub says it expires within 7 days')
  t.equal(new Date(body.token_expires_at).getTime(), inThreeDays.getTime())
  t.equal(body.status, 'analyzed')
  t.equal(body.commit_sha, OLD_SHA)
  t.equal(body.routes_count, 10)
  t.same(body.analysis_summary, before?.analysis_summary)
  t.notOk(res.body.includes(expiring), 'the PAT is never returned')
  const row = await findConnection(app.db, id)
  t.equal(decrypt(app.config.keyring, String(row?.encrypted_token)), expiring)
  t.equal(row?.token_kind, 'classic-pat')
  t.equal((await jobsOf(id)).length, 0, 'no clone or refresh is started')
  t.ok(
    sim.ledger.entries({ route: 'GET /repositories/{id}' }).length > 0,
    'checked by the repository id, not by name',
  )

  t.test(
    'token_status: expired after token_expires_at, invalid after a 401, valid again on replace',
    async (t) => {
      await app.db
        .updateTable('github_connections')
        .set({ token_expires_at: new Date(Date.now() - 1000) })
        .where('id', '=', id)
        .execute()
      t.equal((await call('GET', github)).json().token_status, 'expired')
      await app.db
        .updateTable('github_connections')
        .set({ token_invalid_at: new Date(), token_expires_at: null })
        .where('id', '=', id)
        .execute()
      t.equal((await call('GET', github)).json().token_status, 'invalid')
      const stale = await refresh()
      t.equal(stale.statusCode, 409, 'a refresh with a token GitHub rejected would only fail again')
      t.equal(stale.json().code, 'TOKEN_INVALID')
      const replaced = await patch({ pat: PAT })
      t.equal(replaced.statusCode, 200)
      t.equal(replaced.json().token_status, 'valid', 'no expiry sent, no 401 since')
      t.equal(replaced.json().token_expires_at, null)
    },
  )

  t.test('a PAT that cannot read this repository → 400 INVALID_TOKEN, token unchanged', async (t) => {
    // hubot reads acme/infra-specs only: a PAT for another repository.
    const res = await patch({ pat: tokenOf('hubot') })
    t.equal(res.statusCode, 400, res.body)
    t.same(res.json(), {
      statusCode: 400,
      code: 'INVALID_TOKEN',
      error: 'GitHub PAT is invalid or does not have access to this repository.',
      message: 'GitHub PAT is invalid or does not have access to this repository.',
    })
    const row = await findConnection(app.db, id)
    t.equal(decrypt(app.config.keyring, String(row?.encrypted_token)), PAT)
  })

  t.test('errors as for connect: organisation policy, rate limit, not a token', async (t) => {
    sim.injectFault(refusalFault('sso_required', { path: `/repositories/${SAMPLE_APP_ID}`, org: 'acme' }))
    const sso = await patch({ pat: PAT })
    t.equal(sso.statusCode, 403, sso.body)
    t.equal(sso.json().code, 'GITHUB_SSO_REQUIRED')
    sim.injectFault(
      refusalFault('secondary_rate_limit', { path: `/repositories/${SAMPLE_APP_ID}`, retryAfter: 30 }),
    )
    const limited = await patch({ pat: PAT })
    t.equal(limited.statusCode, 503, limited.body)
    t.equal(limited.json().code, 'GITHUB_RATE_LIMITED')
    const junk = await patch({ pat: 'not a token' })
    t.equal(junk.statusCode, 400)
    t.equal(junk.json().code, 'INVALID_TOKEN')
  })
})

t.test('PATCH on an ended connection → 409 CONNECTION_ENDED', async (t) => {
  await analyzedConnection(t, { status: 'failed', encrypted_token: null })
  const res = await patch({ pat: PAT })
  t.equal(res.statusCode, 409)
  t.equal(res.json().code, 'CONNECTION_ENDED')
})

t.test('validation: bodies are checked, 400 VALIDATION_ERROR', async (t) => {
  await analyzedConnection(t)
  for (const res of [
    await patch({}),
    await patch({ pat: PAT, repo_url: REPO_URL }),
    await patch({ pat: 'x'.repeat(513) }),
    await refresh({ pat: 'x'.repeat(513) }),
    await refresh({ force: true }),
  ]) {
    t.equal(res.statusCode, 400, res.body)
    t.equal(res.json().code, 'VALIDATION_ERROR')
  }
})

t.test('RBAC: owner, admin, qa-automation may; developer and viewer 403; other tenants 404', async (t) => {
  await analyzedConnection(t)
  const member = await signIn(app, sim, 'hubot')
  await addTenantMember(app, owner.cookie, tenant.id, 'hubot', 'member')
  for (const role of ['viewer', 'developer']) {
    await addProjectMember(app, owner.cookie, project.id, 'hubot', role)
    for (const res of [await refresh(undefined, member.cookie), await patch({ pat: PAT }, member.cookie)]) {
      t.equal(res.statusCode, 403, `${role}: ${res.body}`)
      t.equal(res.json().code, 'INSUFFICIENT_ROLE')
    }
  }
  const outsider = await signIn(app, sim, 'monalisa')
  for (const res of [await refresh(undefined, outsider.cookie), await patch({ pat: PAT }, outsider.cookie)]) {
    t.equal(res.statusCode, 404)
    t.equal(res.json().code, 'PROJECT_NOT_FOUND')
  }
  for (const role of ['qa-automation', 'admin']) {
    await addProjectMember(app, owner.cookie, project.id, 'hubot', role)
    t.equal((await refresh(undefined, member.cookie)).statusCode, 202, role)
    t.equal((await patch({ pat: PAT }, member.cookie)).statusCode, 200, role)
  }
})
