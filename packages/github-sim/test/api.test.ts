import t from 'tap'
import { octokit, sim, statusOf, TOKENS } from './fixtures/sim.js'

t.test('authentication and visibility', async (t) => {
  const s = await sim(t)
  const bad = await statusOf(octokit(s, 'ghp_doesnotexist').rest.users.getAuthenticated())
  t.equal(bad.status, 401)
  t.match(bad.message, /Bad credentials/)
  t.equal(bad.headers?.['x-ratelimit-limit'], '60', 'rate-limit headers on 401 too')

  s.revokeToken(TOKENS.hubot)
  t.equal((await statusOf(octokit(s, TOKENS.hubot).rest.users.getAuthenticated())).status, 401, 'revoked')

  const anonPrivate = await statusOf(octokit(s).rest.repos.get({ owner: 'acme', repo: 'infra-specs' }))
  t.equal(anonPrivate.status, 404, 'private repo hidden from anonymous')
  t.equal(
    (await statusOf(octokit(s, TOKENS.monalisa).rest.repos.get({ owner: 'acme', repo: 'infra-specs' })))
      .status,
    404,
    'pending member has no access',
  )
  t.equal(
    (await statusOf(octokit(s, TOKENS.octocatNoScope).rest.repos.get({ owner: 'acme', repo: 'infra-specs' })))
      .status,
    404,
    'token without repo scope',
  )

  const anon = await octokit(s).rest.repos.get({ owner: 'octocat', repo: 'hello-world' })
  t.equal(anon.headers['x-ratelimit-limit'], '60', 'anonymous limit')
  t.equal(anon.data.permissions?.pull, true)

  const me = await octokit(s, TOKENS.octocat).rest.users.getAuthenticated()
  t.equal(me.data.login, 'octocat')
  t.equal(me.headers['x-ratelimit-limit'], '5000')
  t.equal(me.headers['x-oauth-scopes'], 'repo, workflow, read:org, user')
  t.ok(me.headers['x-github-request-id'])
  t.equal((await statusOf(octokit(s).rest.users.getAuthenticated())).status, 401, 'anonymous /user')

  const exp = await octokit(s, TOKENS.hubotExpiring).rest.users.getAuthenticated()
  t.equal(exp.headers['github-authentication-token-expiration'], '2099-01-01 00:00:00 UTC')

  s.addToken('hubot', 'ghp_expired', { scopes: ['repo'], expiresAt: '2020-01-01T00:00:00Z' })
  t.equal(
    (await statusOf(octokit(s, 'ghp_expired').rest.users.getAuthenticated())).status,
    401,
    'expired token',
  )

  const repo = await octokit(s, TOKENS.octocat).rest.repos.get({ owner: 'acme', repo: 'infra-specs' })
  t.equal(repo.data.private, true)
  t.equal(repo.data.permissions?.admin, true, 'org admin')
  const botRepo = await octokit(s, TOKENS.bot).rest.repos.get({ owner: 'acme', repo: 'infra-specs' })
  t.same(botRepo.data.permissions, { admin: false, maintain: false, push: true, triage: true, pull: true })
})

t.test('org membership', async (t) => {
  const s = await sim(t)
  const gh = octokit(s, TOKENS.octocat)
  t.equal(
    (await gh.rest.orgs.getMembershipForUser({ org: 'acme', username: 'monalisa' })).data.state,
    'pending',
  )
  t.equal(
    (await octokit(s, TOKENS.monalisa).rest.orgs.getMembershipForAuthenticatedUser({ org: 'acme' })).data
      .state,
    'pending',
  )
  t.equal(
    (await statusOf(octokit(s, TOKENS.hubot).rest.orgs.getMembershipForAuthenticatedUser({ org: 'acme' })))
      .status,
    404,
  )
  t.equal((await gh.rest.orgs.checkMembershipForUser({ org: 'acme', username: 'portico-bot' })).status, 204)
  t.equal(
    (await statusOf(gh.rest.orgs.checkMembershipForUser({ org: 'acme', username: 'hubot' }))).status,
    404,
  )
  s.setOrgMembership('acme', 'hubot', 'active', 'member')
  t.equal((await gh.rest.orgs.checkMembershipForUser({ org: 'acme', username: 'hubot' })).status, 204)
  t.equal(
    (await octokit(s, TOKENS.hubot).rest.repos.get({ owner: 'acme', repo: 'sample-app' })).status,
    200,
    'members read org repos',
  )
})

t.test('contents writes: sha rules and permissions', async (t) => {
  const s = await sim(t)
  const gh = octokit(s, TOKENS.bot)
  const path = 'infra/alpha/dev/spec.yml'
  const file = await gh.rest.repos.getContent({ owner: 'acme', repo: 'infra-specs', path })
  if (Array.isArray(file.data) || file.data.type !== 'file') throw new Error('expected a file')
  t.match(Buffer.from(file.data.content, 'base64').toString('utf8'), /customer: alpha/)
  const content = Buffer.from('apiVersion: v1\nkind: Pod\n').toString('base64')
  const put = (sha?: string, token: string = TOKENS.bot) =>
    octokit(s, token).rest.repos.createOrUpdateFileContents({
      owner: 'acme',
      repo: 'infra-specs',
      path,
      message: 'update',
      content,
      sha,
    })

  const noSha = await statusOf(put())
  t.equal(noSha.status, 422)
  t.match(noSha.message, /"sha" wasn't supplied/)
  const stale = await statusOf(put('0123456789012345678901234567890123456789'))
  t.equal(stale.status, 409)
  t.match(stale.message, /does not match/)
  t.equal(
    (await statusOf(put(file.data.sha, TOKENS.hubot))).status,
    404,
    'read-only collaborator cannot write',
  )
  t.equal((await statusOf(put(file.data.sha, TOKENS.octocatNoScope))).status, 404, 'token without repo scope')
  const ok = await put(file.data.sha)
  t.equal(ok.status, 200)
  t.equal(ok.data.commit.message, 'update')
  const created = await gh.rest.repos.createOrUpdateFileContents({
    owner: 'acme',
    repo: 'infra-specs',
    path: 'new/file.txt',
    message: 'new',
    content,
  })
  t.equal(created.status, 201)
  const dir = await gh.rest.repos.getContent({ owner: 'acme', repo: 'infra-specs', path: 'infra' })
  t.ok(Array.isArray(dir.data))
  t.equal(
    (await statusOf(gh.rest.repos.getContent({ owner: 'acme', repo: 'infra-specs', path: 'nope' }))).status,
    404,
  )
})

t.test('conditional requests, rate limits, faults, unknown routes', async (t) => {
  const s = await sim(t)
  const gh = octokit(s, TOKENS.octocat)
  const first = await gh.rest.repos.get({ owner: 'acme', repo: 'infra-specs' })
  const etag = first.headers.etag
  t.match(etag, /^W\/"/)
  s.ledger.clear()
  const res = await fetch(`${s.apiUrl}/repos/acme/infra-specs`, {
    headers: { authorization: `token ${TOKENS.octocat}`, 'if-none-match': etag ?? '' },
  })
  t.equal(res.status, 304)
  t.equal(await res.text(), '')
  t.equal(res.headers.get('x-ratelimit-remaining'), first.headers['x-ratelimit-remaining'], '304 not charged')
  t.equal(s.ledger.count({ conditional: true, counted: false, status: 304 }), 1)
  t.equal(s.ledger.count({ counted: true }), 0)

  const rl = await gh.rest.rateLimit.get()
  t.equal(rl.data.resources.core.limit, 5000)
  t.equal(s.ledger.count({ route: 'GET /rate_limit', counted: false }), 1, '/rate_limit not counted')

  s.setRateLimit(2)
  await gh.rest.users.getAuthenticated()
  await gh.rest.users.getAuthenticated()
  const limited = await statusOf(gh.rest.users.getAuthenticated())
  t.equal(limited.status, 403)
  t.match(limited.message, /API rate limit exceeded for user ID 583231/)
  t.equal(limited.headers?.['x-ratelimit-remaining'], '0')
  t.equal(
    (await octokit(s, TOKENS.bot).rest.users.getAuthenticated()).headers['x-ratelimit-remaining'],
    '1',
    'per user',
  )
  s.setRateLimit(5000)

  s.injectFault({ method: 'GET', path: '/user', status: 403, retryAfter: 30, times: 1 })
  const secondary = await statusOf(gh.rest.users.getAuthenticated())
  t.equal(secondary.status, 403)
  t.match(secondary.message, /secondary rate limit/)
  t.equal(secondary.headers?.['retry-after'], '30')
  t.ok(secondary.headers?.['x-ratelimit-remaining'], 'rate-limit headers on injected faults')
  t.equal((await gh.rest.users.getAuthenticated()).status, 200, 'fault consumed')
  s.injectFault({ path: /\/repos\/acme\//, status: 502, times: 2 })
  t.equal((await statusOf(gh.rest.repos.get({ owner: 'acme', repo: 'sample-app' }))).status, 502)
  t.equal((await statusOf(gh.rest.repos.get({ owner: 'acme', repo: 'sample-app' }))).status, 502)
  t.equal((await gh.rest.repos.get({ owner: 'acme', repo: 'sample-app' })).status, 200)
  s.injectFault({ path: '/user', status: 429, retryAfter: 1 })
  t.equal((await statusOf(gh.rest.users.getAuthenticated())).status, 429)

  s.setLatency(50)
  const started = Date.now()
  await gh.rest.users.getAuthenticated()
  t.ok(Date.now() - started >= 45, 'latency added')
  s.setLatency(0)

  const warned = s.warnings.length
  const unknown = await statusOf(
    gh.request('GET /repos/{owner}/{repo}/issues', { owner: 'acme', repo: 'infra-specs' }),
  )
  t.equal(unknown.status, 404)
  t.equal(s.warnings.length, warned + 1)
  t.match(s.warnings.at(-1), /GET \/api\/v3\/repos\/acme\/infra-specs\/issues/)
  t.equal(s.ledger.count({ route: 'UNMATCHED' }), 1)
})

t.test('repository and organization listings', async (t) => {
  const s = await sim(t)
  const names = (list: { full_name: string }[]) => list.map((r) => r.full_name)
  const bot = octokit(s, TOKENS.bot)
  t.same(names((await bot.rest.repos.listForAuthenticatedUser()).data), [
    'acme/infra-specs',
    'acme/sample-app',
  ])
  t.same(names((await octokit(s, TOKENS.hubot).rest.repos.listForAuthenticatedUser()).data), [
    'acme/infra-specs',
  ])
  t.same(
    names(
      (await octokit(s, TOKENS.octocat).rest.repos.listForAuthenticatedUser({ visibility: 'public' })).data,
    ),
    ['octocat/hello-world'],
  )
  t.same(names((await octokit(s, TOKENS.octocatNoScope).rest.repos.listForAuthenticatedUser()).data), [
    'octocat/hello-world',
  ])
  t.equal(
    (await statusOf(bot.rest.repos.listForAuthenticatedUser({ type: 'owner', visibility: 'all' }))).status,
    422,
  )
  t.same(
    names((await octokit(s).rest.repos.listForOrg({ org: 'acme' })).data),
    [],
    'anonymous sees no private org repos',
  )
  t.equal((await bot.rest.repos.listForOrg({ org: 'acme' })).data.length, 2)
  t.same(
    (await bot.rest.orgs.listForAuthenticatedUser()).data.map((o) => o.login),
    ['acme'],
  )
  t.same(
    (await octokit(s, TOKENS.monalisa).rest.orgs.listForAuthenticatedUser()).data,
    [],
    'pending is not listed',
  )
  t.equal((await bot.rest.orgs.get({ org: 'acme' })).data.login, 'acme')
  const page = await bot.rest.repos.listForAuthenticatedUser({ per_page: 1 })
  t.match(page.headers.link, /rel="next"/)

  const raw = await fetch(`${s.apiUrl}/repos/acme/infra-specs/contents/infra/beta/prd/spec.yml?ref=main`, {
    headers: { authorization: `token ${TOKENS.bot}`, accept: 'application/vnd.github.raw' },
  })
  t.equal(raw.status, 200)
  t.match(await raw.text(), /allowed_cidrs/)
  t.ok(raw.headers.get('etag'))
})
