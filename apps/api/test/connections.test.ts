import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { cloneJobId, decrypt } from '@portico/core'
import { findConnection } from '@portico/db'
import { refusalFault } from '@portico/github-sim'
import { startTestSimulator } from '@portico/testing'
import t from 'tap'
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

/**
 * A pass-through to the simulator's REST API that can be switched to drop connections, so
 * "GitHub unreachable" is tested without touching sign-in (which talks to the same API).
 */
async function startGithubProxy() {
  let dropRepoCalls = false
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    if (dropRepoCalls && req.url?.includes('/repos/')) {
      req.socket.destroy()
      return
    }
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const upstream = await fetch(`${sim.url}${req.url}`, {
      method: req.method,
      headers: Object.fromEntries(
        Object.entries(req.headers).filter(([k]) => k !== 'host' && k !== 'connection') as [string, string][],
      ),
      body: chunks.length > 0 ? Buffer.concat(chunks) : undefined,
      redirect: 'manual',
    })
    const headers: Record<string, string> = {}
    upstream.headers.forEach((v, k) => {
      if (k !== 'content-encoding' && k !== 'transfer-encoding' && k !== 'content-length') headers[k] = v
    })
    // A redirect names the simulator's origin; as a reverse proxy would, answer with our own.
    if (headers.location) {
      const { port } = server.address() as AddressInfo
      headers.location = headers.location.replace(sim.url, `http://127.0.0.1:${port}`)
    }
    res.writeHead(upstream.status, headers)
    res.end(Buffer.from(await upstream.arrayBuffer()))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  const { port } = server.address() as AddressInfo
  return {
    apiUrl: `http://127.0.0.1:${port}/api/v3`,
    drop: (on: boolean) => {
      dropRepoCalls = on
    },
  }
}
const proxy = await startGithubProxy()

// Tests may take Redis away in the middle of a request (after the session was read).
const app = await build(t, { ...env, GITHUB_API_URL: proxy.apiUrl }, (app) => {
  app.addHook('preHandler', async (request) => {
    if (request.headers['x-test-redis'] === 'down') app.redis.disconnect()
  })
})
const owner = await signIn(app, sim, 'octocat')
const { tenant, project } = await createTenantWithProject(app, owner.cookie)
const url = (projectId = project.id) => `/api/v1/projects/${projectId}/github`

const post = (
  body: unknown,
  cookie = owner.cookie,
  projectId = project.id,
  extra: Record<string, string> = {},
) =>
  app.inject({
    method: 'POST',
    url: url(projectId),
    headers: { ...writeHeaders(app, cookie), ...extra },
    payload: body as Record<string, unknown>,
  })
const get = (cookie = owner.cookie, projectId = project.id) =>
  app.inject({ method: 'GET', url: url(projectId), headers: { cookie } })
const del = (cookie = owner.cookie, projectId = project.id) =>
  app.inject({ method: 'DELETE', url: url(projectId), headers: writeHeaders(app, cookie) })

/** Removes the project's connections (test clean-up; asserted on in the DELETE test). */
async function disconnect(projectId = project.id) {
  await app.db.deleteFrom('github_connections').where('project_id', '=', projectId).execute()
}

const CONNECTION_FIELDS = [
  'analysis_summary',
  'auth_method',
  'commit_sha',
  'components_count',
  'created_at',
  'default_branch',
  'endpoints_count',
  'error_code',
  'error_message',
  'expires_at',
  'full_name',
  'github_repo_id',
  'id',
  'installation_id',
  'progress',
  'project_id',
  'refresh_error_code',
  'refresh_error_message',
  'refresh_requested_at',
  'refresh_status',
  'refreshed_at',
  'repo_url',
  'repository_id',
  'routes_count',
  'status',
  'token_expires_at',
  'token_status',
  'updated_at',
]

t.test('POST connects: 201 pending, encrypted PAT, clone job with ids only; GET shows it', async (t) => {
  t.teardown(() => disconnect())
  const res = await post({ repo_url: `  ${REPO_URL}.git  `, pat: `  ${PAT}\n` })
  t.equal(res.statusCode, 201, res.body)
  const body = res.json()
  t.same(Object.keys(body).sort(), CONNECTION_FIELDS, 'exactly the documented fields')
  t.equal(body.status, 'pending')
  t.equal(body.progress, 0)
  t.equal(body.project_id, project.id)
  t.equal(body.repo_url, `${REPO_URL}.git`, 'trimmed')
  t.equal(body.default_branch, 'main', 'from GitHub')
  t.equal(body.auth_method, 'pat')
  t.equal(body.installation_id, null)
  t.equal(body.repository_id, body.github_repo_id)
  t.notOk(res.body.includes(PAT), 'the PAT is never returned')

  const row = await findConnection(app.db, body.id, tenant.id)
  t.ok(row)
  t.not(row?.encrypted_token, PAT)
  t.notOk(row?.encrypted_token?.includes(PAT))
  t.equal(decrypt(app.config.keyring, row!.encrypted_token ?? ''), PAT, 'encrypted with the keyring')
  t.equal(row?.token_kind, 'classic-pat')
  t.equal(row?.owner, 'acme')
  t.equal(row?.repo, 'sample-app')

  const job = await app.queues.clone.getJob(cloneJobId(body.id))
  t.same(
    job?.data,
    { connectionId: body.id, requestId: res.headers['x-request-id'] },
    'job data holds ids only (and the request id, for the logs)',
  )
  t.equal(job?.opts.attempts, 3)

  const status = await get()
  t.equal(status.statusCode, 200)
  t.same(status.json(), body)
  t.equal((await get()).headers['content-type'], 'application/json; charset=utf-8')
})

t.test('the token expiry GitHub reports is recorded', async (t) => {
  t.teardown(() => disconnect())
  // hubot's expiring token can read acme/infra-specs as a collaborator.
  const res = await post({
    repo_url: `${sim.url}/acme/infra-specs`,
    pat: 'ghp_hubotexpiring00000000000000000000001',
  })
  t.equal(res.statusCode, 201, res.body)
  const row = await findConnection(app.db, res.json().id)
  t.equal(row?.token_expires_at?.toISOString(), '2099-01-01T00:00:00.000Z')
})

t.test('a second live connection is refused with 409 CONNECTION_EXISTS', async (t) => {
  t.teardown(() => disconnect())
  t.equal((await post({ repo_url: REPO_URL, pat: PAT })).statusCode, 201)
  const calls = sim.ledger.count()
  const again = await post({ repo_url: `${sim.url}/octocat/hello-world`, pat: PAT })
  t.equal(again.statusCode, 409)
  t.equal(sim.ledger.count() - calls, 0, 'refused before the PAT is checked on GitHub')
  t.same(again.json(), {
    statusCode: 409,
    code: 'CONNECTION_EXISTS',
    error: 'A GitHub connection already exists for this project. Disconnect it first.',
    message: 'A GitHub connection already exists for this project. Disconnect it first.',
  })
})

t.test('failed and expired connections do not block a new one; GET shows the newest', async (t) => {
  t.teardown(() => disconnect())
  const first = (await post({ repo_url: REPO_URL, pat: PAT })).json()
  await app.db
    .updateTable('github_connections')
    .set({ status: 'failed' })
    .where('id', '=', first.id)
    .execute()
  const second = await post({ repo_url: REPO_URL, pat: PAT })
  t.equal(second.statusCode, 201)
  t.equal((await get()).json().id, second.json().id)
  await app.db
    .updateTable('github_connections')
    .set({ status: 'expired' })
    .where('id', '=', second.json().id)
    .execute()
  const third = await post({ repo_url: REPO_URL, pat: PAT })
  t.equal(third.statusCode, 201)
  t.equal((await get()).json().id, third.json().id)
})

t.test('20 concurrent POSTs: exactly one 201, nineteen 409', async (t) => {
  t.teardown(() => disconnect())
  const jobsBefore = await app.queues.clone.count()
  const results = await Promise.all(Array.from({ length: 20 }, () => post({ repo_url: REPO_URL, pat: PAT })))
  const codes = results.map((r) => r.statusCode).sort()
  t.same(codes, [201, ...Array(19).fill(409)])
  for (const r of results.filter((r) => r.statusCode === 409)) t.equal(r.json().code, 'CONNECTION_EXISTS')
  const rows = await app.db
    .selectFrom('github_connections')
    .select('id')
    .where('project_id', '=', project.id)
    .execute()
  t.equal(rows.length, 1, 'one row')
  t.equal(await app.queues.clone.count(), jobsBefore + 1, 'one job')
})

t.test('bad repository URLs: 400 INVALID_REPO_URL', async (t) => {
  for (const repo_url of [
    'https://github.com/acme/sample-app',
    `${sim.url}/acme`,
    `${sim.url}/acme/sample-app/tree/main`,
    `${sim.url.replace('http://', 'http://x-access-token:abc@')}/acme/sample-app`,
    `file:///etc/passwd`,
    `${sim.url}/acme/--upload-pack=touch`,
    '',
    '   ',
  ]) {
    const res = await post({ repo_url, pat: PAT })
    t.equal(res.statusCode, 400, repo_url)
    t.match(res.json(), {
      statusCode: 400,
      code: 'INVALID_REPO_URL',
      error: /^Repo URL must be a valid GitHub repository URL: .+\.$/,
      message: /^Repo URL must be a valid GitHub repository URL: .+\.$/,
    })
    t.same(Object.keys(res.json()).sort(), ['code', 'error', 'message', 'statusCode'])
    t.notMatch(res.json().message, /abc|x-access-token/, 'credentials not echoed')
  }
  const scp = await post({ repo_url: `git@127.0.0.1:acme/sample-app.git`, pat: PAT })
  t.equal(scp.statusCode, 201, 'the git@ form on the configured host is accepted')
  t.equal(scp.json().repo_url, 'git@127.0.0.1:acme/sample-app.git')
  await disconnect()
})

t.test('bad PATs: 400 INVALID_TOKEN for 401, 403 and 404 alike', async (t) => {
  const revoked = 'ghp_revoked00000000000000000000000000001'
  sim.addToken('octocat', revoked, { scopes: ['repo'] })
  sim.revokeToken(revoked)
  const cases: [string, string, string][] = [
    ['unknown token (401)', REPO_URL, 'ghp_doesnotexist000000000000000000000001'],
    ['revoked token (401)', REPO_URL, revoked],
    ['no access (404)', REPO_URL, tokenOf('hubot')],
    ['no such repository (404)', `${sim.url}/acme/nope`, PAT],
    ['header injection', REPO_URL, `${PAT}\r\nx-evil: 1`],
  ]
  for (const [what, repo_url, pat] of cases) {
    const res = await post({ repo_url, pat })
    t.equal(res.statusCode, 400, what)
    t.same(res.json(), {
      statusCode: 400,
      code: 'INVALID_TOKEN',
      error: 'GitHub PAT is invalid or does not have access to this repository.',
      message: 'GitHub PAT is invalid or does not have access to this repository.',
    })
    t.notOk(res.body.includes(pat.trim()) && pat.trim() !== '', 'the PAT is not echoed')
  }
  sim.injectFault({ method: 'GET', path: '/repos/acme/sample-app', status: 403, message: 'Forbidden' })
  const forbidden = await post({ repo_url: REPO_URL, pat: PAT })
  t.equal(forbidden.json().code, 'INVALID_TOKEN', 'a plain 403 (no other cause) is the token')
  t.equal((await get()).statusCode, 404, 'nothing was stored')
})

t.test('the PAT check reports a refusal by its cause, never "invalid token" for a working one', async (t) => {
  // Issue 11's example: the primary rate limit spent (403 "API rate limit exceeded for user ID 1.").
  const resetAt = new Date(Date.now() + 600_000)
  sim.setRateLimit(5000, { remaining: 0, resetAt })
  const limited = await post({ repo_url: REPO_URL, pat: PAT })
  sim.setRateLimit(5000)
  t.equal(limited.statusCode, 503)
  t.match(limited.json(), {
    statusCode: 503,
    code: 'GITHUB_RATE_LIMITED',
    error: /^GitHub rate limit reached\. Try again after /,
    message: /^GitHub rate limit reached\. Try again after /,
    reset_at: new Date(Math.floor(resetAt.getTime() / 1000) * 1000).toISOString(),
  })
  t.ok(limited.json().retry_after > 500 && limited.json().retry_after <= 600, 'retry_after in seconds')
  t.equal(limited.headers['retry-after'], String(limited.json().retry_after))
  t.equal((await get()).statusCode, 404, 'nothing was stored')

  const repoPath = { method: 'GET', path: '/repos/acme/sample-app' }
  const cases: Array<[string, Parameters<typeof refusalFault>[0], number, string, RegExp]> = [
    ['secondary rate limit', 'secondary_rate_limit', 503, 'GITHUB_RATE_LIMITED', /secondary rate limit/],
    ['secondary rate limit (429)', 'secondary_rate_limit_429', 503, 'GITHUB_RATE_LIMITED', /secondary/],
    ['SAML SSO', 'sso_required', 403, 'GITHUB_SSO_REQUIRED', /SAML enforcement.*\/orgs\/acme\/sso\?/],
    [
      'OAuth App restrictions',
      'oauth_app_restricted',
      403,
      'GITHUB_OAUTH_APP_RESTRICTED',
      /OAuth App access/,
    ],
    ['IP allow list', 'ip_allow_list', 403, 'GITHUB_IP_NOT_ALLOWED', /IP allow list/],
    ['classic PATs forbidden', 'classic_pat_forbidden', 403, 'GITHUB_TOKEN_POLICY', /forbids access/],
    ['missing permission', 'permission_missing', 403, 'GITHUB_PERMISSION_MISSING', /contents=read/],
  ]
  for (const [what, kind, status, code, message] of cases) {
    sim.injectFault(refusalFault(kind, repoPath))
    const res = await post({ repo_url: REPO_URL, pat: PAT })
    t.equal(res.statusCode, status, what)
    t.match(res.json(), { statusCode: status, code, message }, what)
    t.notOk(res.body.includes(PAT), `${what}: the PAT is not echoed`)
    if (status === 503) t.ok(Number(res.headers['retry-after']) >= 1, `${what}: Retry-After`)
  }
  sim.injectFault(refusalFault('sso_required', repoPath))
  const sso = (await post({ repo_url: REPO_URL, pat: PAT })).json()
  t.match(
    sso.sso_url,
    /^https:\/\/github\.com\/orgs\/acme\/sso\?authorization_request=/,
    'the fix GitHub sends',
  )
  sim.injectFault(refusalFault('permission_missing', repoPath))
  t.match((await post({ repo_url: REPO_URL, pat: PAT })).json(), { accepted_permissions: 'contents=read' })
  t.equal((await get()).statusCode, 404, 'nothing was stored')
})

t.test(
  'GitHub errors: 400 GITHUB_API_ERROR for other statuses, GITHUB_UNREACHABLE when it cannot be reached',
  async (t) => {
    sim.injectFault({ method: 'GET', path: '/repos/acme/sample-app', status: 502, times: 1 })
    const bad = await post({ repo_url: REPO_URL, pat: PAT })
    t.equal(bad.statusCode, 400)
    t.equal(bad.json().code, 'GITHUB_API_ERROR')
    t.match(bad.json().message, /502/)

    proxy.drop(true)
    t.teardown(() => proxy.drop(false))
    const down = await post({ repo_url: REPO_URL, pat: PAT })
    proxy.drop(false)
    t.equal(down.statusCode, 400)
    t.equal(down.json().code, 'GITHUB_UNREACHABLE')
    t.equal((await get()).statusCode, 404, 'nothing was stored')
  },
)

t.test('a renamed repository: connected by id under its current name, the old name followed', async (t) => {
  const before = (await (
    await fetch(`${sim.apiUrl}/repos/acme/sample-app`, { headers: { authorization: `token ${PAT}` } })
  ).json()) as { id: number }
  await sim.renameRepo('acme/sample-app', 'acme/renamed-app')
  t.teardown(() => sim.renameRepo('acme/renamed-app', 'acme/sample-app'))
  const res = await post({ repo_url: `${sim.url}/acme/sample-app`, pat: PAT })
  t.equal(res.statusCode, 201, res.body)
  t.match(res.json(), {
    repo_url: `${sim.url}/acme/sample-app`,
    full_name: 'acme/renamed-app',
    github_repo_id: before.id,
    error_code: null,
  })
  t.match((await get()).json(), { full_name: 'acme/renamed-app', github_repo_id: before.id })
  await disconnect()
})

t.test('a malformed body is a 400 VALIDATION_ERROR', async (t) => {
  for (const body of [
    {},
    { repo_url: REPO_URL },
    { pat: PAT },

    { repo_url: REPO_URL, pat: PAT, x: 1 },
  ]) {
    const res = await post(body)
    t.equal(res.statusCode, 400)
    t.equal(res.json().code, 'VALIDATION_ERROR')
  }
})

/** `PATCH …/github` and `POST …/github/refresh` with `body`. */
const patch = (body: unknown) =>
  app.inject({
    method: 'PATCH',
    url: url(),
    headers: writeHeaders(app, owner.cookie),
    payload: body as Record<string, unknown>,
  })
const refresh = (body: unknown) =>
  app.inject({
    method: 'POST',
    url: `${url()}/refresh`,
    headers: writeHeaders(app, owner.cookie),
    payload: body as Record<string, unknown>,
  })
/** How many times a PAT was checked against GitHub (by repository name or id). */
const patChecks = () =>
  sim.ledger.count({ route: 'GET /repos/{owner}/{repo}' }) +
  sim.ledger.count({ route: 'GET /repositories/{id}' })

t.test('a field the body does not take is refused by name, its value never echoed', async (t) => {
  // A review's example: `{"token": "…"}` in place of `pat` was told "body.pat is required",
  // never that `token` is not a field; the refusal now comes before the schema's other checks.
  const checks = patChecks()
  const cases: Array<[string, (body: unknown) => ReturnType<typeof post>, unknown, string]> = [
    ['POST: token instead of pat', post, { repo_url: REPO_URL, token: PAT }, 'token'],
    ['POST: token alone', post, { token: PAT }, 'token'],
    ['POST: token beside pat', post, { repo_url: REPO_URL, pat: PAT, token: PAT }, 'token'],
    ['POST: a name', post, { repo_url: REPO_URL, pat: PAT, name: '' }, 'name'],
    ['POST: App ids and a token', post, { installation_id: 1, repository_id: 2, token: PAT }, 'token'],
    ['PATCH: token instead of pat', patch, { token: PAT }, 'token'],
    ['PATCH: repo_url', patch, { repo_url: REPO_URL, pat: PAT }, 'repo_url'],
    ['refresh: token instead of pat', refresh, { token: PAT }, 'token'],
    // A token pasted as a key is not repeated (the message is also logged).
    ['POST: a token as a key', post, { repo_url: REPO_URL, pat: PAT, [PAT]: true }, '[REDACTED]'],
  ]
  for (const [what, send, body, field] of cases) {
    const res = await send(body)
    const message = `body has a field this route does not take: ${JSON.stringify(field)}`
    t.equal(res.statusCode, 400, what)
    t.same(res.json(), { statusCode: 400, code: 'VALIDATION_ERROR', error: message, message }, what)
    t.notOk(res.body.includes(PAT), `${what}: the token is not echoed`)
  }
  t.equal(patChecks(), checks, 'GitHub was not asked')
  t.equal((await get()).statusCode, 404, 'nothing was stored')
})

t.test('an empty or blank PAT is a 400 VALIDATION_ERROR; GitHub is not asked', async (t) => {
  // A review's example: `"pat": ""` was 400 INVALID_TOKEN, as though GitHub had refused it.
  const message = 'body.pat must not be blank or contain a NUL character'
  const checks = patChecks()
  for (const pat of ['', '   ', '\t\n ']) {
    for (const [what, res] of [
      ['POST', await post({ repo_url: REPO_URL, pat })],
      ['POST with a bad repo_url too', await post({ repo_url: 'nope', pat })],
      ['PATCH', await patch({ pat })],
      ['refresh', await refresh({ pat })],
    ] as const) {
      t.equal(res.statusCode, 400, `${what} ${JSON.stringify(pat)}`)
      t.same(
        res.json(),
        { statusCode: 400, code: 'VALIDATION_ERROR', error: message, message },
        `${what} ${JSON.stringify(pat)}: the sentence names the rule, not Ajv's "must NOT have fewer than 1 characters"`,
      )
    }
  }
  t.equal(patChecks(), checks, 'GitHub was not asked')
  t.equal((await get()).statusCode, 404, 'nothing was stored')
})

t.test('Redis refusing the job: 503 QUEUE_UNAVAILABLE and no row left behind', async (t) => {
  // A queue key of the wrong type makes Redis reject BullMQ's add script, sessions unaffected.
  const metaKey = `${app.config.REDIS_PREFIX}:clone:meta`
  const saved = await app.redis.hgetall(metaKey)
  await app.redis.del(metaKey)
  await app.redis.set(metaKey, 'not a hash')
  const res = await post({ repo_url: REPO_URL, pat: PAT })
  await app.redis.del(metaKey)
  if (Object.keys(saved).length > 0) await app.redis.hset(metaKey, saved)
  t.equal(res.statusCode, 503)
  t.match(res.json(), {
    statusCode: 503,
    code: 'QUEUE_UNAVAILABLE',
    error: 'An internal error occurred. Try again later; the request id identifies it in the logs.',
  })
  t.notOk(res.body.includes(PAT))
  const rows = await app.db
    .selectFrom('github_connections')
    .select('id')
    .where('project_id', '=', project.id)
    .execute()
  t.same(rows, [], 'the pending row was removed')
  const retry = await post({ repo_url: REPO_URL, pat: PAT })
  t.equal(retry.statusCode, 201, 'the project can connect once Redis takes jobs again')
  await disconnect()
})

t.test('Redis going down mid-request: 503 and no row left behind', async (t) => {
  const res = await post({ repo_url: REPO_URL, pat: PAT }, owner.cookie, project.id, {
    'x-test-redis': 'down',
  })
  await app.redis.connect().catch(() => {})
  await new Promise<void>((resolve) =>
    app.redis.status === 'ready' ? resolve() : app.redis.once('ready', resolve),
  )
  t.equal(res.statusCode, 503)
  // The queue refuses first; saving the rolling session then fails too and has the last word.
  t.match(res.json().code, /^(QUEUE_UNAVAILABLE|SESSION_STORE_UNAVAILABLE)$/)
  t.notOk(res.body.includes(PAT))
  const rows = await app.db
    .selectFrom('github_connections')
    .select('id')
    .where('project_id', '=', project.id)
    .execute()
  t.same(rows, [], 'the pending row was removed')
  const retry = await post({ repo_url: REPO_URL, pat: PAT })
  t.equal(retry.statusCode, 201, 'the project can connect once Redis is back')
  await disconnect()
})

t.test('DELETE: 204 removes the row, the queued job and the clone directory; then 404', async (t) => {
  const created = (await post({ repo_url: REPO_URL, pat: PAT })).json()
  const row = await findConnection(app.db, created.id)
  const { mkdir, writeFile } = await import('node:fs/promises')
  const path = await import('node:path')
  const dir = path.join(app.config.cloneRoot, 'tenants', row!.tenant_id, 'repos', row!.id)
  await mkdir(dir, { recursive: true })
  await writeFile(path.join(dir, 'README.md'), 'x')
  await mkdir(`${dir}.partial-abc`, { recursive: true })

  const res = await del()
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  t.notOk(await findConnection(app.db, created.id), 'row deleted')
  t.notOk(await app.queues.clone.getJob(cloneJobId(created.id)), 'queued job removed')
  const { existsSync } = await import('node:fs')
  t.notOk(existsSync(dir), 'clone directory removed')
  t.notOk(existsSync(`${dir}.partial-abc`))
  const again = await del()
  t.equal(again.statusCode, 404)
  t.equal(again.json().code, 'CONNECTION_NOT_FOUND')
  const status = await get()
  t.equal(status.statusCode, 404)
  t.same(status.json(), {
    statusCode: 404,
    code: 'CONNECTION_NOT_FOUND',
    error: 'This project has no GitHub connection.',
    message: 'This project has no GitHub connection.',
  })
})

t.test(
  'RBAC: owner, admin and qa-automation may; developer and viewer get 403; other tenants get 404',
  async (t) => {
    const member = await signIn(app, sim, 'hubot')
    await addTenantMember(app, owner.cookie, tenant.id, 'hubot', 'member')
    const outsider = await signIn(app, sim, 'monalisa')
    const other = await createTenantWithProject(app, outsider.cookie)

    for (const role of ['viewer', 'developer']) {
      await addProjectMember(app, owner.cookie, project.id, 'hubot', role)
      for (const res of [
        await post({ repo_url: REPO_URL, pat: PAT }, member.cookie),
        await get(member.cookie),
        await del(member.cookie),
      ]) {
        t.equal(res.statusCode, 403, `${role}: ${res.body}`)
        t.equal(res.json().code, 'INSUFFICIENT_ROLE')
      }
    }
    for (const res of [
      await post({ repo_url: REPO_URL, pat: PAT }, outsider.cookie),
      await get(outsider.cookie),
      await del(outsider.cookie),
    ]) {
      t.equal(res.statusCode, 404, 'another tenant’s project does not exist for them')
      t.equal(res.json().code, 'PROJECT_NOT_FOUND')
    }
    t.equal(
      (await get(outsider.cookie, other.project.id)).statusCode,
      404,
      'their own project has no connection',
    )

    await addProjectMember(app, owner.cookie, project.id, 'hubot', 'qa-automation')
    const created = await post({ repo_url: REPO_URL, pat: PAT }, member.cookie)
    t.equal(created.statusCode, 201, 'qa-automation may connect')
    t.equal((await get(member.cookie)).statusCode, 200)
    t.equal((await del(member.cookie)).statusCode, 204)
    await addProjectMember(app, owner.cookie, project.id, 'hubot', 'admin')
    t.equal((await get(member.cookie)).statusCode, 404, 'admin passes the role check')

    const anonymous = await app.inject({ method: 'GET', url: url() })
    t.equal(anonymous.statusCode, 401)
    t.equal(anonymous.json().code, 'NOT_AUTHENTICATED')
    const bogus = await get(owner.cookie, 'not-a-uuid')
    t.equal(bogus.statusCode, 404)
  },
)
