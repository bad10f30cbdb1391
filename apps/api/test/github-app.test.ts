import { createHash } from 'node:crypto'
// Connecting repositories through a GitHub App (issue 13), API side, against the simulator's
// demo App `portico-dev` (id 424242, installation 5550001 on acme: infra-specs and sample-app).
import { ConfigError, decrypt, encrypt, loadConfig } from '@portico/core'
import { findConnection } from '@portico/db'
import { startTestSimulator } from '@portico/testing'
import t from 'tap'
import { build, createTenantWithProject, signIn, writeHeaders } from './helper.js'

const { sim, env } = await startTestSimulator(t)
const ghApp = sim.githubApp('portico-dev')
const INSTALLATION = 5550001
const INFRA_SPECS = 700001
const SAMPLE_APP = 700002
const HELLO_WORLD = 1296269
const appEnv = {
  GITHUB_APP_ID: String(ghApp.id),
  GITHUB_APP_SLUG: ghApp.slug,
  // One line with \n escapes, as environments carry it.
  GITHUB_APP_PRIVATE_KEY: ghApp.privateKey.trim().replace(/\n/g, '\\n'),
}

interface InstallationsBody {
  app: { slug: string; install_url: string }
  installations: {
    id: number
    account: { login: string; type: string }
    repository_selection: string
    repositories: { id: number; full_name: string; private: boolean; default_branch: string | null }[]
  }[]
}

// Sign-in through the OAuth App (gho_ tokens): listings use the App's credentials plus the user's reads.
const app = await build(t, { ...env, ...appEnv })
const octocat = await signIn(app, sim, 'octocat')
const { project } = await createTenantWithProject(app, octocat.cookie)
const base = `/api/v1/projects/${project.id}/github`

const listInstallations = (cookie: string, url = `${base}/installations`) =>
  app.inject({ method: 'GET', url, headers: { cookie } })

t.test(
  'configuration: a malformed key stops start-up; \\n escapes and a key file are accepted',
  async (t) => {
    const malformed = () =>
      loadConfig({
        ...appEnv,
        GITHUB_APP_PRIVATE_KEY: '-----BEGIN RSA PRIVATE KEY-----\\nnot a key\\n-----END',
      })
    t.throws(malformed, ConfigError)
    try {
      malformed()
    } catch (err) {
      t.match((err as Error).message, /GITHUB_APP_PRIVATE_KEY: not a PEM RSA private key/)
      t.notMatch((err as Error).message, /not a key/, 'the value itself is not echoed')
    }
    t.throws(() => loadConfig({ GITHUB_APP_ID: '1' }), /set all three/)
    const ok = loadConfig(appEnv)
    t.equal(ok.githubApp?.appId, ghApp.id)
    t.match(ok.githubApp?.privateKey, /^-----BEGIN [A-Z ]*PRIVATE KEY-----\n/)
    t.equal(loadConfig({}).githubApp, null, 'all unset: no App')
    const dir = t.testdir({ 'app.pem': ghApp.privateKey })
    const fromFile = loadConfig({
      GITHUB_APP_ID: appEnv.GITHUB_APP_ID,
      GITHUB_APP_SLUG: appEnv.GITHUB_APP_SLUG,
      GITHUB_APP_PRIVATE_KEY_FILE: `${dir}/app.pem`,
    })
    t.equal(fromFile.githubApp?.privateKey.trim(), ghApp.privateKey.trim(), 'read from the file')
    t.throws(
      () =>
        loadConfig({
          ...appEnv,
          GITHUB_APP_PRIVATE_KEY: undefined,
          GITHUB_APP_PRIVATE_KEY_FILE: `${dir}/missing.pem`,
        }),
      /GITHUB_APP_PRIVATE_KEY_FILE: cannot read/,
    )
  },
)

t.test('without an App configured, the App method answers 503 GITHUB_APP_NOT_CONFIGURED', async (t) => {
  const plain = await build(t, env)
  const who = await signIn(plain, sim, 'octocat')
  const { project } = await createTenantWithProject(plain, who.cookie)
  const list = await plain.inject({
    method: 'GET',
    url: `/api/v1/projects/${project.id}/github/installations`,
    headers: { cookie: who.cookie },
  })
  t.equal(list.statusCode, 503)
  t.equal(list.json().code, 'GITHUB_APP_NOT_CONFIGURED')
  t.match(list.json().message, /GITHUB_APP_ID/, 'the sentence says what to set')
  const post = await plain.inject({
    method: 'POST',
    url: `/api/v1/projects/${project.id}/github`,
    headers: writeHeaders(plain, who.cookie),
    payload: { installation_id: INSTALLATION, repository_id: SAMPLE_APP },
  })
  t.equal(post.statusCode, 503)
  t.equal(post.json().code, 'GITHUB_APP_NOT_CONFIGURED')
})

t.test('lists the installations both the user and the App reach, with a signed install link', async (t) => {
  const res = await listInstallations(octocat.cookie, `${base}/installations?return_to=/projects/x`)
  t.equal(res.statusCode, 200, res.body)
  const body = res.json() as InstallationsBody
  t.equal(body.app.slug, 'portico-dev')
  const install = new URL(body.app.install_url)
  t.equal(`${install.origin}${install.pathname}`, `${sim.url}/apps/portico-dev/installations/new`)
  t.ok(install.searchParams.get('state'), 'a signed state')
  const acme = body.installations.find((i) => i.id === INSTALLATION)
  t.ok(acme)
  t.same(acme?.account, { login: 'acme', type: 'Organization' })
  t.equal(acme?.repository_selection, 'selected')
  t.same(acme?.repositories.map((r) => r.full_name).sort(), ['acme/infra-specs', 'acme/sample-app'])
  t.same(
    acme?.repositories.find((r) => r.id === SAMPLE_APP),
    { id: SAMPLE_APP, full_name: 'acme/sample-app', private: true, default_branch: 'main' },
  )
  const bad = await listInstallations(octocat.cookie, `${base}/installations?return_to=//evil.example`)
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'INVALID_RETURN_TO')
})

t.test('a user sees only the repositories they can read', async (t) => {
  // hubot: not an acme member, read collaborator on infra-specs only.
  const hubot = await signIn(app, sim, 'hubot')
  const { project } = await createTenantWithProject(app, hubot.cookie)
  const res = await listInstallations(hubot.cookie, `/api/v1/projects/${project.id}/github/installations`)
  t.equal(res.statusCode, 200, res.body)
  const body = res.json() as InstallationsBody
  t.same(
    body.installations.map((i) => [i.id, i.repositories.map((r) => r.full_name)]),
    [[INSTALLATION, ['acme/infra-specs']]],
  )
  // The ids are checked, never trusted: sample-app is in the installation, but not readable by hubot.
  const post = await app.inject({
    method: 'POST',
    url: `/api/v1/projects/${project.id}/github`,
    headers: writeHeaders(app, hubot.cookie),
    payload: { installation_id: INSTALLATION, repository_id: SAMPLE_APP },
  })
  t.equal(post.statusCode, 400, post.body)
  t.equal(post.json().code, 'INSTALLATION_NOT_ACCESSIBLE')

  // monalisa (pending member): nothing.
  const monalisa = await signIn(app, sim, 'monalisa')
  const own = await createTenantWithProject(app, monalisa.cookie)
  const none = await listInstallations(
    monalisa.cookie,
    `/api/v1/projects/${own.project.id}/github/installations`,
  )
  t.same((none.json() as InstallationsBody).installations, [])

  // A public repository anyone can read is not an outsider's to connect: reading proves nothing.
  sim.setRepoVisibility('acme', 'sample-app', 'public')
  t.teardown(() => sim.setRepoVisibility('acme', 'sample-app', 'private'))
  const outsider = await signIn(app, sim, 'monalisa')
  const still = await listInstallations(
    outsider.cookie,
    `/api/v1/projects/${own.project.id}/github/installations`,
  )
  t.same(
    (still.json() as InstallationsBody).installations,
    [],
    'a public repository is not listed to an outsider',
  )
  const forged = await app.inject({
    method: 'POST',
    url: `/api/v1/projects/${own.project.id}/github`,
    headers: writeHeaders(app, outsider.cookie),
    payload: { installation_id: INSTALLATION, repository_id: SAMPLE_APP },
  })
  t.equal(forged.statusCode, 400, forged.body)
  t.equal(forged.json().code, 'INSTALLATION_NOT_ACCESSIBLE')
})

t.test(
  'forged installation_id / repository_id are refused; a real pair connects without a token',
  async (t) => {
    const post = (payload: Record<string, unknown>) =>
      app.inject({ method: 'POST', url: base, headers: writeHeaders(app, octocat.cookie), payload })
    const forgedInstallation = await post({ installation_id: 987654321, repository_id: SAMPLE_APP })
    t.equal(forgedInstallation.statusCode, 400)
    t.same(forgedInstallation.json(), {
      statusCode: 400,
      code: 'INSTALLATION_NOT_ACCESSIBLE',
      error: forgedInstallation.json().message,
      message: forgedInstallation.json().message,
    })
    const forgedRepo = await post({ installation_id: INSTALLATION, repository_id: HELLO_WORLD })
    t.equal(forgedRepo.statusCode, 400)
    t.equal(forgedRepo.json().code, 'REPOSITORY_NOT_IN_INSTALLATION')
    const mixed = await post({ installation_id: INSTALLATION, repository_id: SAMPLE_APP, pat: 'x' })
    t.equal(mixed.statusCode, 400, 'one method at a time')
    const notNumbers = await post({ installation_id: 'abc', repository_id: SAMPLE_APP })
    t.equal(notNumbers.statusCode, 400)

    const created = await post({ installation_id: INSTALLATION, repository_id: SAMPLE_APP })
    t.equal(created.statusCode, 201, created.body)
    const view = created.json()
    t.equal(view.auth_method, 'app')
    t.equal(view.installation_id, INSTALLATION)
    t.equal(view.repository_id, SAMPLE_APP)
    t.equal(view.full_name, 'acme/sample-app')
    t.equal(view.repo_url, `${sim.url}/acme/sample-app`)
    const row = await findConnection(app.db, view.id)
    t.equal(row?.encrypted_token, null, 'no token stored for an App connection')
    t.equal(row?.token_kind, null)
    t.equal(row?.auth_method, 'app')
    t.equal(Number(row?.installation_id), INSTALLATION)

    const again = await post({ installation_id: INSTALLATION, repository_id: INFRA_SPECS })
    t.equal(again.statusCode, 409, 'one active connection per project, as with a PAT')
    t.equal(again.json().code, 'CONNECTION_EXISTS')

    const read = await app.inject({ method: 'GET', url: base, headers: { cookie: octocat.cookie } })
    t.equal(read.json().auth_method, 'app')
    t.equal(read.json().installation_id, INSTALLATION)
  },
)

/** Follows the install link through the simulator's install page; returns the Setup URL it leads to. */
async function installThrough(installUrl: string, login: string): Promise<URL> {
  const page = new URL(installUrl)
  page.searchParams.set('login', login)
  page.searchParams.set('account', 'acme')
  const res = await fetch(page, { redirect: 'manual' })
  t.equal(res.status, 302)
  return new URL(String(res.headers.get('location')))
}

t.test(
  'the Setup URL: a real installation returns to the page in the state; forgeries get 400',
  async (t) => {
    const list = await listInstallations(
      octocat.cookie,
      `${base}/installations?return_to=/projects/p1?tab=github`,
    )
    const installUrl = (list.json() as InstallationsBody).app.install_url
    const setup = await installThrough(installUrl, 'octocat')
    t.equal(setup.searchParams.get('installation_id'), String(INSTALLATION))
    t.equal(setup.searchParams.get('setup_action'), 'update')
    const back = await app.inject({
      method: 'GET',
      url: `/github/setup${setup.search}`,
      headers: { cookie: octocat.cookie },
    })
    t.equal(back.statusCode, 302, back.body)
    t.equal(back.headers.location, '/projects/p1?tab=github')

    const state = setup.searchParams.get('state') ?? ''
    const setupWith = (query: Record<string, string>, cookie = octocat.cookie) =>
      app.inject({ method: 'GET', url: `/github/setup?${new URLSearchParams(query)}`, headers: { cookie } })
    // An installation of someone else (the App on hubot's own account) in the query.
    const hubots = sim.installApp('portico-dev', 'hubot')
    t.teardown(() => sim.uninstallApp(hubots))
    const forgedId = await setupWith({ installation_id: String(hubots), setup_action: 'install', state })
    t.equal(forgedId.statusCode, 400)
    t.equal(forgedId.json().code, 'INVALID_SETUP_STATE')
    const forgedState = await setupWith({
      installation_id: String(INSTALLATION),
      setup_action: 'install',
      state: `${state.slice(0, -2)}xx`,
    })
    t.equal(forgedState.json().code, 'INVALID_SETUP_STATE')
    const noState = await setupWith({ installation_id: String(INSTALLATION), setup_action: 'install' })
    t.equal(noState.json().code, 'INVALID_SETUP_STATE')
    // Someone else's state (a link made for octocat, opened by hubot).
    const hubot = await signIn(app, sim, 'hubot')
    const stolen = await setupWith(
      { installation_id: String(INSTALLATION), setup_action: 'install', state },
      hubot.cookie,
    )
    t.equal(stolen.json().code, 'INVALID_SETUP_STATE')
  },
)

t.test('/health is healthy with an App and no GH_TOKEN: the App installation acts', async (t) => {
  const noToken = await build(t, { ...env, ...appEnv, GH_TOKEN: undefined })
  t.equal(noToken.config.GH_TOKEN, undefined)
  sim.ledger.clear()
  const res = await noToken.inject({ method: 'GET', url: '/health' })
  t.equal(res.statusCode, 200, res.body)
  const body = res.json()
  t.equal(body.status, 'healthy')
  t.equal(body.github, 'connected')
  t.equal(body.repo_status, 'ok')
  t.equal(body.token_kind, 'server-to-server')
  t.ok(
    sim.ledger.count({ route: 'POST /app/installations/{installation_id}/access_tokens' }) >= 1,
    'an installation token was minted',
  )
})

t.test(
  'sign-in through the App client: listing with the user token; refresh once after expiry',
  async (t) => {
    const viaApp = await build(t, {
      ...env,
      ...appEnv,
      GITHUB_OAUTH_CLIENT_ID: ghApp.clientId,
      GITHUB_OAUTH_CLIENT_SECRET: ghApp.clientSecret,
    })
    const who = await signIn(viaApp, sim, 'octocat')
    const { project } = await createTenantWithProject(viaApp, who.cookie)
    const url = `/api/v1/projects/${project.id}/github/installations`
    const key = (() => {
      const value = decodeURIComponent(who.cookie.split('=').slice(1).join('='))
      return `${viaApp.config.REDIS_PREFIX}:sess:${value.replace(/^s:/, '').replace(/\.[^.]*$/, '')}`
    })()
    const stored = async () => JSON.parse(String(await viaApp.redis.get(key)))
    const session = await stored()
    const firstToken = decrypt(viaApp.config.keyring, session.githubToken)
    t.match(firstToken, /^ghu_/, 'an expiring App user token')
    t.match(
      decrypt(viaApp.config.keyring, session.githubRefreshToken),
      /^ghr_/,
      'its refresh token, encrypted',
    )
    t.ok(session.githubTokenExpiresAt > Date.now() + 7 * 3600_000, 'expires in 8 hours')
    t.notMatch(JSON.stringify(session), /gh[ur]_/, 'no token in clear in the session')

    sim.ledger.clear()
    const listed = await viaApp.inject({ method: 'GET', url, headers: { cookie: who.cookie } })
    t.equal(listed.statusCode, 200, listed.body)
    t.same(
      (listed.json() as InstallationsBody).installations.map((i) => i.id),
      [INSTALLATION],
    )
    t.ok(sim.ledger.count({ route: 'GET /user/installations' }) >= 1, 'listed with the user token')

    // The clock moves past the expiry: the session says so, and GitHub agrees.
    const moved = { ...session, githubTokenExpiresAt: Date.now() - 1000 }
    await viaApp.redis.set(key, JSON.stringify(moved), 'KEEPTTL')
    sim.expireToken(firstToken)
    sim.ledger.clear()
    const burst = await Promise.all(
      Array.from({ length: 5 }, () => viaApp.inject({ method: 'GET', url, headers: { cookie: who.cookie } })),
    )
    t.same(
      burst.map((r) => r.statusCode),
      [200, 200, 200, 200, 200],
      burst.map((r) => r.body).join('\n'),
    )
    const refreshes = sim.ledger.entries({ kind: 'oauth' }).filter((e) => e.method === 'POST')
    t.equal(refreshes.length, 1, 'refreshed once for five concurrent requests')
    const after = await stored()
    const secondToken = decrypt(viaApp.config.keyring, after.githubToken)
    t.not(secondToken, firstToken, 'the session holds the new token')
    t.ok(after.githubTokenExpiresAt > Date.now() + 7 * 3600_000)

    // Another process holds the refresh lock past this request's wait (it is slow, or died):
    // 503 GITHUB_TOKEN_REFRESH_BUSY, and the session stands; the next request refreshes.
    await viaApp.redis.set(
      key,
      JSON.stringify({ ...after, githubTokenExpiresAt: Date.now() - 1000 }),
      'KEEPTTL',
    )
    const lockKey = `${viaApp.config.REDIS_PREFIX}:gh-refresh:lock:${createHash('sha256')
      .update(decrypt(viaApp.config.keyring, after.githubRefreshToken))
      .digest('hex')}`
    await viaApp.redis.set(lockKey, 'another-process', 'PX', 60_000)
    const busy = await viaApp.inject({ method: 'GET', url, headers: { cookie: who.cookie } })
    t.equal(busy.statusCode, 503, busy.body)
    t.equal(busy.json().code, 'GITHUB_TOKEN_REFRESH_BUSY')
    t.equal(busy.headers['retry-after'], '5')
    t.equal(await viaApp.redis.get(lockKey), 'another-process', "another process's lock is left alone")
    await viaApp.redis.del(lockKey)
    const resumed = await viaApp.inject({ method: 'GET', url, headers: { cookie: who.cookie } })
    t.equal(resumed.statusCode, 200, 'the session survived the wait')

    // A refresh GitHub refuses ends the session: 401 TOKEN_EXPIRED, then signed out.
    await viaApp.redis.set(
      key,
      JSON.stringify({
        ...after,
        githubTokenExpiresAt: Date.now() - 1000,
        githubRefreshToken: encrypt(viaApp.config.keyring, `ghr_${'0'.repeat(36)}`),
      }),
      'KEEPTTL',
    )
    const refused = await viaApp.inject({ method: 'GET', url, headers: { cookie: who.cookie } })
    t.equal(refused.statusCode, 401, refused.body)
    t.equal(refused.json().code, 'TOKEN_EXPIRED')
    const next = await viaApp.inject({ method: 'GET', url, headers: { cookie: who.cookie } })
    t.equal(next.statusCode, 401)
    t.equal(next.json().code, 'NOT_AUTHENTICATED', 'the session ended')
  },
)
