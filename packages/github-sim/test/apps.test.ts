import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto'
import { join } from 'node:path'
import { createAppAuth } from '@octokit/auth-app'
import { Octokit } from '@octokit/rest'
import t from 'tap'
import { defaultSeed, type Simulator, validateSeed } from '../src/index.js'
import { basicHeader, octokit, runGit, sim, statusOf, TOKENS, tempDir } from './fixtures/sim.js'

// The machine is shared with other test runs: a generous budget, never a timing assertion.
t.setTimeout(600_000)

const SLUG = 'portico-dev'
const INSTALLATION = 5550001
const quiet = { debug() {}, info() {}, warn() {}, error() {} }

/** An Octokit that authenticates as the App (JWT) or as an installation, through @octokit/auth-app. */
function appOctokit(s: Simulator, installationId?: number): Octokit {
  const app = s.githubApp(SLUG)
  return new Octokit({
    baseUrl: s.apiUrl,
    authStrategy: createAppAuth,
    auth: { appId: app.id, privateKey: app.privateKey, ...(installationId ? { installationId } : {}) },
    request: { retries: 0 },
    log: quiet,
  })
}

/** A JWT signed with node's crypto, for claims @octokit/auth-app would never produce. */
function jwt(claims: Record<string, unknown>, key: string): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const input = `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc(claims)}`
  return `${input}.${sign('sha256', Buffer.from(input), createPrivateKey(key)).toString('base64url')}`
}

async function api(
  s: Simulator,
  path: string,
  token: string,
  init: { method?: string; body?: unknown } = {},
) {
  const res = await fetch(`${s.apiUrl}${path}`, {
    method: init.method ?? 'GET',
    headers: {
      authorization: `Bearer ${token}`,
      accept: 'application/vnd.github+json',
      ...(init.body ? { 'content-type': 'application/json' } : {}),
    },
    body: init.body ? JSON.stringify(init.body) : undefined,
  })
  return { status: res.status, body: (await res.json().catch(() => null)) as Record<string, unknown> }
}

/** Runs the OAuth web flow for the App's client and returns the token response. */
async function signInThroughApp(s: Simulator, login = 'octocat') {
  const app = s.githubApp(SLUG)
  const auth = await fetch(
    `${s.url}/login/oauth/authorize?client_id=${app.clientId}&redirect_uri=${encodeURIComponent('http://localhost:3000/auth/callback')}&login=${login}`,
    { redirect: 'manual' },
  )
  const code = new URL(auth.headers.get('location')!).searchParams.get('code')!
  const res = await fetch(`${s.url}/login/oauth/access_token`, {
    method: 'POST',
    headers: { accept: 'application/json', 'content-type': 'application/json' },
    body: JSON.stringify({ client_id: app.clientId, client_secret: app.clientSecret, code }),
  })
  return (await res.json()) as Record<string, string | number>
}

t.test('an App authenticates with a JWT from @octokit/auth-app (iss = app id or client id)', async (t) => {
  const s = await sim(t)
  const app = s.githubApp(SLUG)
  const me = await appOctokit(s).request('GET /app')
  t.equal(me.data?.slug, SLUG)
  t.equal(me.data?.id, app.id)
  t.equal(me.data?.installations_count, 1)
  const list = await appOctokit(s).request('GET /app/installations')
  t.same(
    list.data.map((i) => [
      i.id,
      i.account && 'login' in i.account ? i.account.login : null,
      i.repository_selection,
    ]),
    [[INSTALLATION, 'acme', 'selected']],
  )
  const byRepo = await appOctokit(s).request('GET /repos/{owner}/{repo}/installation', {
    owner: 'acme',
    repo: 'infra-specs',
  })
  t.equal(byRepo.data.id, INSTALLATION)
  t.equal(
    (
      await statusOf(
        appOctokit(s).request('GET /repos/{owner}/{repo}/installation', {
          owner: 'octocat',
          repo: 'hello-world',
        }),
      )
    ).status,
    404,
  )

  const byClientId = new Octokit({
    baseUrl: s.apiUrl,
    authStrategy: createAppAuth,
    auth: { appId: app.clientId, privateKey: app.privateKey },
    log: quiet,
  })
  t.equal((await byClientId.request('GET /app')).data?.id, app.id, 'iss may be the client id')
})

t.test('bad JWTs get GitHub’s 401s; other credentials on App routes too', async (t) => {
  const s = await sim(t)
  const { id, privateKey } = s.githubApp(SLUG)
  const now = Math.floor(Date.now() / 1000)
  const cases: [string, string, RegExp][] = [
    [
      'expired',
      jwt({ iss: id, iat: now - 700, exp: now - 100 }, privateKey),
      /'Expiration time' claim \('exp'\) must be a numeric value/,
    ],
    ['exp too far', jwt({ iss: id, iat: now - 30, exp: now + 3600 }, privateKey), /is too far in the future/],
    [
      'iat in the future',
      jwt({ iss: id, iat: now + 300, exp: now + 500 }, privateKey),
      /'Issued at' claim \('iat'\)/,
    ],
    [
      'signed by another key',
      jwt(
        { iss: id, iat: now - 30, exp: now + 500 },
        generateKeyPairSync('rsa', { modulusLength: 2048 })
          .privateKey.export({ type: 'pkcs8', format: 'pem' })
          .toString(),
      ),
      /A JSON web token could not be decoded/,
    ],
    [
      'unknown issuer',
      jwt({ iss: 999, iat: now - 30, exp: now + 500 }, privateKey),
      /A JSON web token could not be decoded/,
    ],
    ['a PAT', TOKENS.octocat, /A JSON web token could not be decoded/],
  ]
  for (const [name, token, message] of cases) {
    const r = await api(s, '/app', token)
    t.equal(r.status, 401, `${name}: 401`)
    t.match(r.body.message, message, `${name}: message`)
  }
  const ok = await api(s, '/app', jwt({ iss: id, iat: now + 30, exp: now + 590 }, privateKey))
  t.equal(ok.status, 200, 'iat up to a minute ahead (clock drift) is accepted')
  const elsewhere = await api(
    s,
    '/repos/acme/infra-specs',
    jwt({ iss: id, iat: now - 30, exp: now + 500 }, privateKey),
  )
  t.equal(elsewhere.status, 403, 'a JWT does not read repositories')
  t.equal(elsewhere.body.message, 'Resource not accessible by integration')
})

t.test('installation tokens: down-scoped, 1 hour, see only their repositories (REST and git)', async (t) => {
  const s = await sim(t)
  const gh = appOctokit(s)
  const minted = await gh.request('POST /app/installations/{installation_id}/access_tokens', {
    installation_id: INSTALLATION,
    repositories: ['sample-app'],
    permissions: { contents: 'read', metadata: 'read' },
  })
  t.equal(minted.status, 201)
  const token = minted.data.token
  t.match(token, /^ghs_[A-Za-z0-9]{36}$/)
  const ttl = Date.parse(minted.data.expires_at) - Date.now()
  t.ok(ttl > 59 * 60_000 && ttl <= 3600_000, 'expires in one hour')
  t.same(minted.data.permissions, { contents: 'read', metadata: 'read' })
  t.equal(minted.data.repository_selection, 'selected')
  t.same(
    minted.data.repositories?.map((r) => r.full_name),
    ['acme/sample-app'],
  )

  const ok = octokit(s, token)
  t.equal((await ok.rest.repos.get({ owner: 'acme', repo: 'sample-app' })).status, 200)
  t.equal(
    (await statusOf(ok.rest.repos.get({ owner: 'acme', repo: 'infra-specs' }))).status,
    404,
    'not in the token',
  )
  t.equal(
    (await ok.rest.repos.get({ owner: 'octocat', repo: 'hello-world' })).status,
    200,
    'public repositories are readable',
  )
  const repos = await ok.request('GET /installation/repositories')
  t.same(
    repos.data.repositories.map((r) => r.full_name),
    ['acme/sample-app'],
  )
  t.equal(
    (
      await statusOf(
        ok.rest.repos.createOrUpdateFileContents({
          owner: 'acme',
          repo: 'sample-app',
          path: 'x',
          message: 'x',
          content: '',
        }),
      )
    ).status,
    404,
    'contents: read cannot write',
  )

  const dir = await tempDir(t)
  const good = await runGit([
    '-c',
    basicHeader(token),
    'clone',
    '--quiet',
    `${s.url}/acme/sample-app.git`,
    join(dir, 'a'),
  ])
  t.equal(good.code, 0, `clone with the installation token: ${good.stderr}`)
  const bad = await runGit([
    '-c',
    basicHeader(token),
    'clone',
    '--quiet',
    `${s.url}/acme/infra-specs.git`,
    join(dir, 'b'),
  ])
  t.not(bad.code, 0, 'a repository outside the token cannot be cloned')

  // Through @octokit/auth-app's installation strategy, with the library's own token cache.
  const inst = appOctokit(s, INSTALLATION)
  const all = await inst.request('GET /installation/repositories')
  t.same(all.data.repositories.map((r) => r.full_name).sort(), ['acme/infra-specs', 'acme/sample-app'])
  t.equal(all.data.repository_selection, 'selected')
})

t.test(
  'minting refuses to widen repositories or permissions (422) and other Apps’ installations (404)',
  async (t) => {
    const s = await sim(t)
    const gh = appOctokit(s)
    const mint = (body: Record<string, unknown>, installation_id = INSTALLATION) =>
      statusOf(
        gh.request('POST /app/installations/{installation_id}/access_tokens', { installation_id, ...body }),
      )
    const notGranted = await mint({ permissions: { issues: 'write' } })
    t.equal(notGranted.status, 422)
    t.match(notGranted.message, /The permissions requested are not granted to this installation/)
    t.equal((await mint({ permissions: { contents: 'admin' } })).status, 422, 'a higher level is wider')
    const outside = await mint({ repositories: ['hello-world'] })
    t.equal(outside.status, 422)
    t.match(outside.message, /There is at least one repository that does not exist or is not accessible/)
    t.equal((await mint({ repository_ids: [1296269] })).status, 422, 'by id too')
    t.equal((await mint({ repository_ids: [700002] })).status, 201, 'a selected repository by id')
    t.equal((await mint({}, 12345)).status, 404)
  },
)

t.test('uninstalling and suspending revoke tokens; installation webhook events', async (t) => {
  const s = await sim(t)
  const gh = appOctokit(s)
  const { data } = await gh.request('POST /app/installations/{installation_id}/access_tokens', {
    installation_id: INSTALLATION,
  })
  s.suspendInstallation(INSTALLATION, true)
  t.equal(
    (await statusOf(octokit(s, data.token).rest.repos.get({ owner: 'acme', repo: 'sample-app' }))).status,
    401,
  )
  const suspended = await statusOf(
    gh.request('POST /app/installations/{installation_id}/access_tokens', { installation_id: INSTALLATION }),
  )
  t.equal(suspended.status, 403)
  s.suspendInstallation(INSTALLATION, false)
  s.uninstallApp(INSTALLATION)
  t.equal(
    (
      await statusOf(
        gh.request('POST /app/installations/{installation_id}/access_tokens', {
          installation_id: INSTALLATION,
        }),
      )
    ).status,
    404,
  )
  await s.webhooksSettled()
  t.same(
    s.webhookDeliveries({ event: 'installation' }).map((d) => d.action),
    ['suspend', 'unsuspend', 'deleted'],
  )
})

t.test('user installations: App user tokens only (OAuth App tokens and PATs get 403)', async (t) => {
  const s = await sim(t)
  const pat = await api(s, '/user/installations', TOKENS.octocat)
  t.equal(pat.status, 403)
  t.match(pat.body.message, /You must authenticate with an access token authorized to a GitHub App/)

  const tok = await signInThroughApp(s, 'octocat')
  t.match(String(tok.access_token), /^ghu_/)
  const mine = await api(s, '/user/installations', String(tok.access_token))
  t.equal(mine.status, 200)
  t.equal(mine.body.total_count, 1)
  const repos = await api(s, `/user/installations/${INSTALLATION}/repositories`, String(tok.access_token))
  t.same((repos.body.repositories as { full_name: string }[]).map((r) => r.full_name).sort(), [
    'acme/infra-specs',
    'acme/sample-app',
  ])

  // hubot is no acme member: sees the installation only through its infra-specs collaboration.
  const hubot = await signInThroughApp(s, 'hubot')
  const theirs = await api(s, `/user/installations/${INSTALLATION}/repositories`, String(hubot.access_token))
  t.same(
    (theirs.body.repositories as { full_name: string }[]).map((r) => r.full_name),
    ['acme/infra-specs'],
  )
  // monalisa (pending member) reaches none of its repositories.
  const mona = await signInThroughApp(s, 'monalisa')
  t.equal((await api(s, '/user/installations', String(mona.access_token))).body.total_count, 0)
  t.equal(
    (await api(s, `/user/installations/${INSTALLATION}/repositories`, String(mona.access_token))).status,
    404,
  )
})

t.test('expiring user tokens: ghu_ for 8 hours with a single-use ghr_ refresh token', async (t) => {
  const s = await sim(t)
  const app = s.githubApp(SLUG)
  const tok = await signInThroughApp(s)
  t.equal(tok.expires_in, 28800)
  t.match(String(tok.refresh_token), /^ghr_/)
  t.equal(tok.refresh_token_expires_in, 15897600)
  const me = await octokit(s, String(tok.access_token)).rest.users.getAuthenticated()
  t.equal(me.data.login, 'octocat')
  t.ok(me.headers['github-authentication-token-expiration'], 'expiry header')

  s.expireToken(String(tok.access_token))
  t.equal((await statusOf(octokit(s, String(tok.access_token)).rest.users.getAuthenticated())).status, 401)
  const refresh = (refresh_token: string) =>
    fetch(`${s.url}/login/oauth/access_token`, {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/json' },
      body: JSON.stringify({
        client_id: app.clientId,
        client_secret: app.clientSecret,
        grant_type: 'refresh_token',
        refresh_token,
      }),
    }).then((r) => r.json() as Promise<Record<string, string | number>>)
  const next = await refresh(String(tok.refresh_token))
  t.match(String(next.access_token), /^ghu_/)
  t.not(next.refresh_token, tok.refresh_token)
  t.equal((await octokit(s, String(next.access_token)).rest.users.getAuthenticated()).data.login, 'octocat')
  const again = await refresh(String(tok.refresh_token))
  t.equal(again.error, 'bad_refresh_token', 'a refresh token works once')
})

t.test('the install page redirects to the Setup URL with installation_id and setup_action', async (t) => {
  const s = await sim(t)
  const first = await fetch(`${s.url}/apps/${SLUG}/installations/new?state=s1&account=octocat`, {
    redirect: 'manual',
  })
  t.equal(first.status, 302)
  const to = new URL(first.headers.get('location')!)
  t.equal(`${to.origin}${to.pathname}`, 'http://localhost:3000/github/setup')
  t.equal(to.searchParams.get('setup_action'), 'install')
  t.equal(to.searchParams.get('state'), 's1')
  const id = Number(to.searchParams.get('installation_id'))
  t.ok(s.githubApp(SLUG).installations.some((i) => i.id === id && i.account === 'octocat'))
  const second = await fetch(`${s.url}/apps/${SLUG}/installations/new?account=acme`, { redirect: 'manual' })
  const back = new URL(second.headers.get('location')!)
  t.equal(back.searchParams.get('setup_action'), 'update')
  t.equal(Number(back.searchParams.get('installation_id')), INSTALLATION)
  const denied = await fetch(`${s.url}/apps/${SLUG}/installations/new?account=acme&login=hubot`, {
    redirect: 'manual',
  })
  t.equal(denied.status, 403, 'only owners install on an organization')
  await s.webhooksSettled()
  t.same(
    s.webhookDeliveries({ event: 'installation' }).map((d) => d.action),
    ['created'],
  )
})

t.test('the seed refuses malformed Apps, naming every problem', async (t) => {
  const seed = structuredClone(defaultSeed)
  const app = seed.github_apps![0]!
  app.private_key = 'not a pem'
  app.permissions = { contents: 'owner' as 'read' }
  app.installations = [
    { id: 1, account: 'nobody', repository_selection: 'selected' },
    { id: 2, account: 'acme', repository_selection: 'selected', repositories: ['missing'] },
  ]
  let message = ''
  t.throws(
    () => {
      try {
        validateSeed(seed)
      } catch (err) {
        message = (err as Error).message
        throw err
      }
    },
    { name: 'SeedError' },
  )
  for (const problem of [
    'private_key must be a PEM key',
    'permissions must map',
    'account must name a seeded user or org',
    'missing is not a seeded repository of acme',
  ]) {
    t.match(message, problem, `names: ${problem}`)
  }
  t.ok(validateSeed(structuredClone(defaultSeed)).github_apps?.length, 'the default seed is valid')
})
