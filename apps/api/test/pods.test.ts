import { createOctokit, decrypt } from '@portico/core'
import { startTestSimulator } from '@portico/testing'
import t from 'tap'
import { build, signIn, writeHeaders } from './helper.js'

const { sim, env, tokenOf } = await startTestSimulator(t)
const bot = createOctokit({ token: tokenOf('portico-bot'), baseUrl: sim.apiUrl, retries: 0 })
const repo = { owner: 'acme', repo: 'infra-specs' }

const ALL = ['alpha', 'beta', 'gamma'].flatMap((customer) =>
  ['dev', 'stg', 'prd'].map((e) => ({ customer, env: e })),
)
/** The OAuth token a session holds (as the sign-in tests read it). */
async function tokenOfSession(server: Awaited<ReturnType<typeof build>>, cookie: string): Promise<string> {
  const value = decodeURIComponent(cookie.split('=').slice(1).join('='))
  const id = value.replace(/^s:/, '').replace(/\.[^.]*$/, '')
  const stored = await server.redis.get(`${server.config.REDIS_PREFIX}:sess:${id}`)
  return decrypt(server.config.keyring, JSON.parse(String(stored)).githubToken)
}

const counted = () => sim.ledger.count({ counted: true, kind: 'api' })

async function commitSpec(path: string, text: string) {
  let sha: string | undefined
  try {
    const res = await bot.rest.repos.getContent({ ...repo, path, ref: 'main' })
    sha = (res.data as { sha: string }).sha
  } catch {}
  await bot.rest.repos.createOrUpdateFileContents({
    ...repo,
    path,
    message: `test: ${path}`,
    content: Buffer.from(text).toString('base64'),
    branch: 'main',
    ...(sha ? { sha } : {}),
  })
}

// One app without the org gate (service fallback and signed-in users), one with it.
const app = await build(t, { ...env, ALLOW_SERVICE_TOKEN_FALLBACK: 'true' })
const gatedApp = await build(t, { ...env, ACCESS_ORG: 'acme' })
const octocat = await signIn(app, sim, 'octocat')
/** `POST /api/refresh` as a signed-in user (anonymous callers get 401). */
const refresh = () =>
  app.inject({ method: 'POST', url: '/api/refresh', headers: writeHeaders(app, octocat.cookie) })

t.test('GET /api/pods: sorted, one counted call cold, none warm', async (t) => {
  await refresh()
  sim.ledger.clear()
  const cold = await app.inject({ url: '/api/pods' })
  t.equal(cold.statusCode, 200)
  t.same(cold.json(), ALL, 'customer order, then dev, stg, prd')
  t.equal(counted(), 1, 'cold: one recursive tree call')
  t.same(
    sim.ledger.entries({ kind: 'api' }).map((e) => e.route),
    ['GET /repos/{owner}/{repo}/git/trees/{tree_sha}'],
  )
  sim.ledger.clear()
  const warm = await app.inject({ url: '/api/pods' })
  t.same(warm.json(), ALL)
  t.equal(counted(), 0, 'warm: zero counted calls')
  t.same(
    sim.ledger.entries({ kind: 'api' }).map((e) => [e.status, e.conditional]),
    [[304, true]],
    'revalidated with If-None-Match',
  )
})

t.test("one caller's concurrent reads share one conditional request", async (t) => {
  const list = () => app.inject({ url: '/api/pods', headers: { cookie: octocat.cookie } })
  t.equal((await list()).statusCode, 200)
  sim.ledger.clear()
  const answers = await Promise.all(Array.from({ length: 10 }, list))
  t.same(
    answers.map((r) => r.statusCode),
    Array(10).fill(200),
  )
  t.same(answers[9]?.json(), ALL)
  t.same(
    sim.ledger.entries({ kind: 'api' }).map((e) => [e.login, e.status, e.conditional]),
    [['octocat', 304, true]],
    'one request to GitHub, not one per read',
  )
  // Each caller is still checked with their own token.
  const hubot = await signIn(app, sim, 'hubot')
  sim.ledger.clear()
  const both = await Promise.all([
    list(),
    app.inject({ url: '/api/pods', headers: { cookie: hubot.cookie } }),
    list(),
  ])
  t.same(
    both.map((r) => r.statusCode),
    [200, 200, 200],
  )
  t.same(
    sim.ledger
      .entries({ kind: 'api' })
      .map((e) => e.login)
      .sort(),
    ['hubot', 'octocat'],
  )
})

t.test('the cache never serves a user who lost access', async (t) => {
  const { cookie } = await signIn(app, sim, 'hubot')
  await app.inject({ url: '/api/pods' }) // warm, as the service token
  sim.ledger.clear()
  const before = await app.inject({ url: '/api/pods', headers: { cookie } })
  t.equal(before.statusCode, 200, 'a read collaborator lists pods')
  t.equal(counted(), 0, "revalidated with hubot's own token: 304")
  t.same(
    sim.ledger.entries({ kind: 'api' }).map((e) => e.login),
    ['hubot'],
  )

  sim.addCollaborator('acme', 'infra-specs', 'hubot', null)
  t.teardown(() => sim.addCollaborator('acme', 'infra-specs', 'hubot', 'read'))
  const after = await app.inject({ url: '/api/pods', headers: { cookie } })
  t.equal(after.statusCode, 404)
  t.equal(after.json().code, 'SPECS_REPO_NOT_FOUND')
  const pod = await app.inject({ url: '/api/pod/alpha/dev', headers: { cookie } })
  t.equal(pod.statusCode, 404)
  const stillServed = await app.inject({ url: '/api/pods' })
  t.equal(stillServed.statusCode, 200, 'others are unaffected')
})

t.test(
  'PODS_REVALIDATE_SECONDS: a caller’s own confirmation stands for the window, per caller',
  async (t) => {
    const windowed = await build(t, { ...env, PODS_REVALIDATE_SECONDS: '3600' })
    const octo = await signIn(windowed, sim, 'octocat')
    const hubot = await signIn(windowed, sim, 'hubot')
    const list = (cookie: string) => windowed.inject({ url: '/api/pods', headers: { cookie } })
    t.equal((await list(octo.cookie)).statusCode, 200)
    sim.ledger.clear()
    const again = await Promise.all([list(octo.cookie), list(octo.cookie), list(octo.cookie)])
    t.ok(again.every((r) => r.statusCode === 200))
    t.same(again[0]?.json(), ALL)
    t.same(sim.ledger.entries({ kind: 'api' }), [], 'within the window: no GitHub call at all')
    t.equal((await list(hubot.cookie)).statusCode, 200)
    t.same(
      sim.ledger.entries({ kind: 'api' }).map((e) => [e.login, e.status]),
      [['hubot', 304]],
      'another caller is checked with their own token',
    )
    // A push changes the tree: callers within their window see it after POST /api/refresh.
    sim.ledger.clear()
    await windowed.inject({
      method: 'POST',
      url: '/api/refresh',
      headers: writeHeaders(windowed, octo.cookie),
    })
    t.equal((await list(octo.cookie)).statusCode, 200)
    t.equal(sim.ledger.entries({ kind: 'api' }).length, 1, 'after a refresh the caller asks GitHub again')
  },
)

t.test(
  'mode "new" reads the repository, not a listing within its window: a pod made seconds ago is 409',
  async (t) => {
    // A review's finding: "new" trusted the caller's cached listing, so a pod made within
    // PODS_REVALIDATE_SECONDS was overwritten. Its own specs folder keeps the other tests' listing.
    const windowed = await build(t, { ...env, PODS_REVALIDATE_SECONDS: '3600', SPECS_PATH: 'fresh-specs' })
    const octo = await signIn(windowed, sim, 'octocat')
    const list = () => windowed.inject({ url: '/api/pods', headers: { cookie: octo.cookie } })
    t.same((await list()).json(), [], 'nothing listed yet')
    await bot.rest.repos.createOrUpdateFileContents({
      ...repo,
      path: 'fresh-specs/fresh/dev/spec.yml',
      message: 'test: fresh/dev made elsewhere',
      content: Buffer.from('instance_name: fresh-dev-01\n').toString('base64'),
      branch: 'main',
    })
    t.same((await list()).json(), [], 'the listing within the window does not show it yet')
    const res = await windowed.inject({
      method: 'POST',
      url: '/api/pod',
      payload: { customer: 'fresh', env: 'dev', mode: 'new', spec: { instance_name: 'fresh-dev-02' } },
      headers: writeHeaders(windowed, octo.cookie),
    })
    t.equal(res.statusCode, 409, res.body)
    t.match(res.json(), { code: 'POD_EXISTS', message: 'Pod already exists: fresh/dev' })
    t.same(await windowed.db.selectFrom('deployments').select('id').execute(), [], 'no deployment')
  },
)

t.test('ACCESS_ORG gate: members pass, outsiders get 403 whatever is cached', async (t) => {
  const member = await signIn(gatedApp, sim, 'octocat')
  const outsider = await signIn(gatedApp, sim, 'hubot')
  const pending = await signIn(gatedApp, sim, 'monalisa')
  sim.ledger.clear()
  const ok = await gatedApp.inject({ url: '/api/pods', headers: { cookie: member.cookie } })
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), ALL)
  t.same(
    sim.ledger.entries({ counted: true, kind: 'api' }).map((e) => e.route),
    ['GET /user/memberships/orgs/{org}', 'GET /repos/{owner}/{repo}/git/trees/{tree_sha}'],
    'cold with the gate: membership, tree (a member needs no visibility check)',
  )
  sim.ledger.clear()
  t.equal((await gatedApp.inject({ url: '/api/pods', headers: { cookie: member.cookie } })).statusCode, 200)
  t.equal(counted(), 0, 'warm with the gate: zero counted calls')

  for (const who of [outsider, pending]) {
    const res = await gatedApp.inject({ url: '/api/pods', headers: { cookie: who.cookie } })
    t.equal(res.statusCode, 403)
    t.equal(res.json().code, 'ORG_MEMBERSHIP_REQUIRED')
    const pod = await gatedApp.inject({ url: '/api/pod/alpha/dev', headers: { cookie: who.cookie } })
    t.equal(pod.json().code, 'ORG_MEMBERSHIP_REQUIRED')
  }
  const service = await gatedApp.inject({ url: '/api/pods' })
  t.equal(service.statusCode, 401, 'anonymous callers never pass the gate: the service actor is no one')

  // The gate covers private repositories only: made public, the specs are open to non-members.
  sim.setRepoVisibility('acme', 'infra-specs', 'public')
  t.teardown(() => sim.setRepoVisibility('acme', 'infra-specs', 'private'))
  const open = await gatedApp.inject({ url: '/api/pods', headers: { cookie: outsider.cookie } })
  t.equal(open.statusCode, 200)
})

t.test('GET /api/pod/{customer}/{env} and the alias: the parsed document itself, in one call', async (t) => {
  sim.ledger.clear()
  const res = await app.inject({ url: '/api/pod/beta/prd' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { customer: 'beta', environment: 'prd' },
    spec: {
      compute: { instance_name: 'beta-prd-01', instance_type: 't4g.nano' },
      security: { waf: { enabled: true }, allowed_cidrs: ['10.20.0.0/16'] },
      labels: { tier: 'production' },
    },
  })
  t.equal(counted(), 1, 'one contents call')
  const alias = await app.inject({ url: '/api/pods/beta/prd' })
  t.same(alias.json(), res.json())

  const missing = await app.inject({ url: '/api/pod/alpha/qa' })
  t.equal(missing.statusCode, 404)
  t.match(missing.json(), { code: 'POD_NOT_FOUND', message: 'Pod not found: alpha/qa' })
  t.equal((await app.inject({ url: '/api/pod/nobody/dev' })).json().message, 'Pod not found: nobody/dev')
  t.equal((await app.inject({ url: '/api/pod/alpha' })).statusCode, 404, 'a directory is not a pod')
})

t.test(
  'an empty spec.yml (zero bytes, whitespace, comments, null) is a pod whose spec is not valid',
  async (t) => {
    // A review's finding: listed, yet 404 on read. The file exists, so the pod does: it is listed,
    // and reading it is 422 INVALID_SPEC, as for a malformed spec (POST: deployments.test.ts).
    const empties: [string, string][] = [
      ['dev', ''],
      ['stg', '  \n\n\t\n'],
      ['prd', '# nothing here yet\n\n# (to be written)\n'],
      ['qa', '---\n~\n'],
    ]
    // The listing is cached (and revalidated) from before the files appear.
    t.equal((await app.inject({ url: '/api/pods' })).statusCode, 200)
    for (const [e, text] of empties) await commitSpec(`infra/hollow/${e}/spec.yml`, text)

    // GitHub's contents answer for an empty file, as the simulator serves it.
    const raw = await bot.rest.repos.getContent({ ...repo, path: 'infra/hollow/dev/spec.yml', ref: 'main' })
    t.match(raw.data, { type: 'file', size: 0, content: '', encoding: 'base64' })

    const list = await app.inject({ url: '/api/pods' })
    t.equal(list.statusCode, 200)
    t.same(
      list.json().filter((p: { customer: string }) => p.customer === 'hollow'),
      ['dev', 'stg', 'prd', 'qa'].map((e) => ({ customer: 'hollow', env: e })),
      'listed, by the revalidated cache',
    )
    for (const [e] of empties) {
      const message = `Spec for hollow/${e} is not valid: the document is empty`
      for (const url of [`/api/pod/hollow/${e}`, `/api/pods/hollow/${e}`, `/api/v1/pods/hollow/${e}`]) {
        const res = await app.inject({ url })
        t.equal(res.statusCode, 422, url)
        t.same(res.json(), { statusCode: 422, code: 'INVALID_SPEC', error: message, message }, url)
      }
    }

    // A pod whose spec is emptied stays a pod: still listed (warm), its read is 422, not 404.
    await commitSpec('infra/hollow/later/spec.yml', 'kind: Pod\n')
    t.equal((await app.inject({ url: '/api/pod/hollow/later' })).statusCode, 200)
    t.ok(
      (await app.inject({ url: '/api/pods' })).json().some((p: { env: string }) => p.env === 'later'),
      'listed while valid',
    )
    await commitSpec('infra/hollow/later/spec.yml', '')
    t.ok(
      (await app.inject({ url: '/api/pods' })).json().some((p: { env: string }) => p.env === 'later'),
      'still listed once emptied',
    )
    t.equal((await app.inject({ url: '/api/pod/hollow/later' })).json().code, 'INVALID_SPEC')
    t.equal((await app.inject({ url: '/api/pod/hollow/absent' })).json().code, 'POD_NOT_FOUND')
  },
)

t.test('other environments sort after prd, alphabetically', async (t) => {
  await commitSpec('infra/alpha/qa/spec.yml', 'kind: Pod\n')
  await commitSpec('infra/alpha/demo/spec.yml', 'kind: Pod\n')
  await commitSpec('infra/alpha/notes.md', 'not a pod\n')
  await commitSpec('infra/alpha/dev/extra/spec.yml', 'too deep\n')
  const res = await app.inject({ url: '/api/pods' })
  t.same(
    res.json().filter((p: { customer: string }) => p.customer === 'alpha'),
    ['dev', 'stg', 'prd', 'demo', 'qa'].map((e) => ({ customer: 'alpha', env: e })),
  )

  // Truncated trees: the listing walks the folders instead and finds the same pods.
  sim.truncateTrees(true)
  t.teardown(() => sim.truncateTrees(false))
  await refresh()
  sim.ledger.clear()
  const walked = await app.inject({ url: '/api/pods' })
  t.equal(walked.statusCode, 200)
  t.same(walked.json(), res.json(), 'same pods from the fallback walk')
  t.ok(
    sim.ledger.entries({ kind: 'api' }).some((e) => e.path.endsWith('?recursive=1') === false),
    'non-recursive tree calls were made',
  )
})

t.test('path traversal and invalid names are 400s with the validation messages', async (t) => {
  const cases: [string, string][] = [
    ['/api/pod/..%2F..%2Fetc/dev', 'customer contains path traversal attempt'],
    ['/api/pod/alpha/..%5C..%5Csecrets', 'environment contains path traversal attempt'],
    ['/api/pods/alpha/dev%2F..%2F..', 'environment contains path traversal attempt'],
    ['/api/v1/pods/alpha/a%2Fb', 'environment contains path traversal attempt'],
    ['/api/pod/alpha.dev/dev', 'customer contains invalid characters (use a-z, A-Z, 0-9, -, _ only)'],
    ['/api/pod/al%20pha/dev', 'customer contains invalid characters (use a-z, A-Z, 0-9, -, _ only)'],
    [`/api/pod/${'a'.repeat(51)}/dev`, 'customer must be 1-50 characters'],
    [`/api/pod/alpha/${'d'.repeat(51)}`, 'environment must be 1-50 characters'],
  ]
  sim.ledger.clear()
  for (const [url, message] of cases) {
    const res = await app.inject({ url })
    t.equal(res.statusCode, 400, url)
    t.same(res.json(), { statusCode: 400, code: 'VALIDATION_ERROR', error: message, message }, url)
  }
  // Dot segments are resolved by the router before any handler: no pod route matches.
  const dots = await app.inject({ url: '/api/pod/%2E%2E/dev' })
  t.equal(dots.statusCode, 404)
  t.equal(dots.json().code, 'NOT_FOUND')
  t.equal(sim.ledger.count({ kind: 'api' }), 0, 'nothing reached GitHub')
})

t.test(
  'malformed, oversized and alias-bomb specs are 422 for that pod; the listing still works',
  async (t) => {
    await commitSpec('infra/broken/dev/spec.yml', 'spec: [unclosed\n')
    await commitSpec('infra/huge/dev/spec.yml', `spec:\n  note: "${'x'.repeat(70 * 1024)}"\n`)
    const lol = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for (let i = 1; i < 9; i++) {
      const [p, c] = [String.fromCharCode(96 + i), String.fromCharCode(97 + i)]
      lol.push(`${c}: &${c} [${Array(9).fill(`*${p}`).join(',')}]`)
    }
    await commitSpec('infra/bomb/dev/spec.yml', `${lol.join('\n')}\n`)

    const broken = await app.inject({ url: '/api/pod/broken/dev' })
    t.equal(broken.statusCode, 422)
    t.match(broken.json(), { code: 'INVALID_SPEC', message: /^Spec for broken\/dev is not valid: / })
    const huge = await app.inject({ url: '/api/pod/huge/dev' })
    t.equal(huge.statusCode, 422)
    t.match(huge.json(), { code: 'SPEC_TOO_LARGE', message: /^Spec for huge\/dev is too large/ })
    const bomb = await app.inject({ url: '/api/pod/bomb/dev' })
    t.equal(bomb.statusCode, 422)
    t.match(bomb.json(), { code: 'INVALID_SPEC', message: /alias/i })

    const list = await app.inject({ url: '/api/pods' })
    t.equal(list.statusCode, 200)
    const names = list.json().map((p: { customer: string; env: string }) => `${p.customer}/${p.env}`)
    t.ok(
      ['broken/dev', 'huge/dev', 'bomb/dev'].every((n) => names.includes(n)),
      'listed',
    )
  },
)

t.test('POST /api/refresh clears the cache; anonymous callers get 401', async (t) => {
  await app.inject({ url: '/api/pods' })
  const anonymous = await app.inject({ method: 'POST', url: '/api/refresh' })
  t.equal(anonymous.statusCode, 401)
  t.same(anonymous.json(), {
    statusCode: 401,
    code: 'NOT_AUTHENTICATED',
    error: 'Sign in with GitHub to continue.',
    message: 'Sign in with GitHub to continue.',
  })
  sim.ledger.clear()
  await app.inject({ url: '/api/pods' })
  t.equal(counted(), 0, 'an anonymous refresh cleared nothing')
  const res = await refresh()
  t.equal(res.statusCode, 200)
  t.same(res.json(), { message: 'Cache cleared' })
  sim.ledger.clear()
  await app.inject({ url: '/api/pods' })
  t.equal(counted(), 1, 'the next listing is cold again')
})

t.test('GitHub unavailable or rate limited: 503 with a code (and the reset time)', async (t) => {
  await refresh()
  sim.injectFault({ method: 'GET', path: /\/git\/trees\//, status: 502, times: 5 })
  const down = await app.inject({ url: '/api/pods' })
  t.equal(down.statusCode, 503)
  t.equal(down.json().code, 'GITHUB_UNAVAILABLE')
  t.notMatch(down.body, /ghp_|Server Error|stack/, 'no internals')

  const resetAt = new Date(Date.now() + 3600_000)
  sim.setRateLimit(5000, { remaining: 0, resetAt })
  t.teardown(() => sim.setRateLimit(5000))
  const limited = await app.inject({ url: '/api/pod/alpha/dev' })
  t.equal(limited.statusCode, 503)
  t.equal(limited.json().code, 'GITHUB_RATE_LIMITED')
  t.equal(limited.json().reset_at, new Date(Math.floor(resetAt.getTime() / 1000) * 1000).toISOString())
  t.ok(Number(limited.headers['retry-after']) > 3000)

  const unreachable = await build(t, {
    ...env,
    ALLOW_SERVICE_TOKEN_FALLBACK: 'true',
    GITHUB_API_URL: 'http://127.0.0.1:1/api/v3',
  })
  const res = await unreachable.inject({ url: '/api/pods' })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'GITHUB_UNAVAILABLE')
})

t.test('authentication: 401s, never 500s', async (t) => {
  const noToken = await build(t, { ...env, ALLOW_SERVICE_TOKEN_FALLBACK: 'true', GH_TOKEN: '' })
  for (const url of ['/api/pods', '/api/pod/alpha/dev', '/api/deployments']) {
    const res = await noToken.inject({ url })
    t.equal(res.statusCode, 401, url)
    t.equal(res.json().code, 'NOT_AUTHENTICATED')
  }
  const noFallback = await build(t, { ...env, ALLOW_SERVICE_TOKEN_FALLBACK: 'false' })
  t.equal((await noFallback.inject({ url: '/api/pods' })).statusCode, 401)

  // A user whose token GitHub no longer accepts: 401 TOKEN_EXPIRED, and the session ends.
  const { cookie } = await signIn(app, sim, 'octocat')
  const user = await app.inject({ url: '/api/auth/user', headers: { cookie } })
  t.equal(user.statusCode, 200)
  sim.revokeToken(await tokenOfSession(app, cookie))
  const res = await app.inject({ url: '/api/pods', headers: { cookie } })
  t.equal(res.statusCode, 401)
  t.equal(res.json().code, 'TOKEN_EXPIRED')

  const badService = await build(t, {
    ...env,
    ALLOW_SERVICE_TOKEN_FALLBACK: 'true',
    GH_TOKEN: 'ghp_notarealtoken000000000000000000000001',
  })
  const svc = await badService.inject({ url: '/api/pods' })
  t.equal(svc.statusCode, 401)
  t.equal(svc.json().code, 'GITHUB_UNAUTHORIZED')
})

t.test('GH_REPO unset: 503 PODS_NOT_CONFIGURED', async (t) => {
  const unconfigured = await build(t, { ...env, GH_REPO: '' })
  const { cookie } = await signIn(unconfigured, sim, 'octocat')
  for (const [method, url] of [
    ['GET', '/api/pods'],
    ['GET', '/api/pod/alpha/dev'],
    ['GET', '/api/deployments'],
  ] as const) {
    const res = await unconfigured.inject({ method, url, headers: { cookie } })
    t.equal(res.statusCode, 503, url)
    t.match(res.json(), { code: 'PODS_NOT_CONFIGURED', message: /GH_REPO/ })
  }
})

t.test('GET /api/v1/pods/{customer}/{env}: the document with its path, blob sha and ETag', async (t) => {
  const res = await app.inject({ url: '/api/v1/pods/alpha/dev', headers: { cookie: octocat.cookie } })
  t.equal(res.statusCode, 200, res.body)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['customer', 'document', 'env', 'etag', 'path', 'sha'])
  t.match(body, {
    customer: 'alpha',
    env: 'dev',
    path: 'infra/alpha/dev/spec.yml',
    sha: /^[0-9a-f]{40}$/,
    etag: /^(W\/)?"/,
    document: { kind: 'Pod', metadata: { customer: 'alpha', environment: 'dev' } },
  })
  const file = await bot.rest.repos.getContent({ ...repo, path: 'infra/alpha/dev/spec.yml', ref: 'main' })
  t.equal(body.sha, (file.data as { sha: string }).sha, "GitHub's blob sha")
  const legacy = await app.inject({ url: '/api/pod/alpha/dev', headers: { cookie: octocat.cookie } })
  t.same(legacy.json(), body.document, 'the legacy route answers the document alone')
  t.equal(legacy.json().spec.compute.instance_name, 'alpha-dev-01')
  const missing = await app.inject({ url: '/api/v1/pods/alpha/nope', headers: { cookie: octocat.cookie } })
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().error, 'Pod not found: alpha/nope')
})
