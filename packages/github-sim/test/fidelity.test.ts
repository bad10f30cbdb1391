import t from 'tap'
import { defaultSeed, refusalFault } from '../src/index.js'
import { basicHeader, runGit, sim, TOKENS, tempDir } from './fixtures/sim.js'

const auth = { authorization: `token ${TOKENS.octocat}` }

t.test('renames and transfers: REST 301 to /repositories/{id}, git 301 to the new name', async (t) => {
  const s = await sim(t)
  const before = await fetch(`${s.apiUrl}/repos/acme/sample-app`, { headers: auth })
  const { id, full_name } = (await before.json()) as { id: number; full_name: string }
  t.equal(full_name, 'acme/sample-app')
  await s.renameRepo('acme/sample-app', 'acme/renamed-app')

  const old = await fetch(`${s.apiUrl}/repos/acme/sample-app`, { headers: auth, redirect: 'manual' })
  t.equal(old.status, 301)
  t.equal(old.headers.get('location'), `${s.apiUrl}/repositories/${id}`)
  t.match(await old.json(), { message: 'Moved Permanently', url: `${s.apiUrl}/repositories/${id}` })
  const sub = await fetch(`${s.apiUrl}/repos/ACME/Sample-App/branches?per_page=1`, {
    headers: auth,
    redirect: 'manual',
  })
  t.equal(sub.headers.get('location'), `${s.apiUrl}/repositories/${id}/branches?per_page=1`, 'sub-paths too')

  const byId = await fetch(`${s.apiUrl}/repositories/${id}`, { headers: auth })
  t.equal(byId.status, 200)
  t.match(await byId.json(), { id, full_name: 'acme/renamed-app' })
  t.equal((await fetch(`${s.apiUrl}/repositories/999999999`, { headers: auth })).status, 404)

  const info = await fetch(`${s.url}/acme/sample-app.git/info/refs?service=git-upload-pack`, {
    headers: { authorization: basicHeader(TOKENS.octocat).replace('http.extraHeader=Authorization: ', '') },
    redirect: 'manual',
  })
  t.equal(info.status, 301)
  t.equal(info.headers.get('location'), `${s.url}/acme/renamed-app.git/info/refs?service=git-upload-pack`)

  const dir = await tempDir(t)
  const clone = await runGit([
    '-c',
    basicHeader(TOKENS.octocat),
    'clone',
    '--depth',
    '1',
    `${s.url}/acme/renamed-app.git`,
    `${dir}/a`,
  ])
  t.equal(clone.code, 0, clone.stderr)

  // A transfer to another owner redirects the same way.
  await s.renameRepo('acme/renamed-app', 'octocat/moved-app')
  const moved = await fetch(`${s.apiUrl}/repos/acme/renamed-app`, { headers: auth, redirect: 'manual' })
  t.equal(moved.headers.get('location'), `${s.apiUrl}/repositories/${id}`)
  t.match(await (await fetch(`${s.apiUrl}/repositories/${id}`, { headers: auth })).json(), {
    full_name: 'octocat/moved-app',
  })
})

t.test('empty repositories: no commits, git clone warns and has no HEAD', async (t) => {
  const s = await sim(t, {
    seed: {
      ...defaultSeed,
      repos: [
        ...(defaultSeed.repos ?? []),
        { owner: 'octocat', name: 'blank', private: false, empty: true, files: {} },
      ],
    },
  })
  const repo = await fetch(`${s.apiUrl}/repos/octocat/blank`, { headers: auth })
  t.equal(repo.status, 200)
  const branches = await fetch(`${s.apiUrl}/repos/octocat/blank/branches`, { headers: auth })
  t.same(await branches.json(), [])
  const dir = await tempDir(t)
  const clone = await runGit(['clone', `${s.url}/octocat/blank.git`, `${dir}/b`])
  t.equal(clone.code, 0)
  t.match(clone.stderr, /cloned an empty repository/)
})

t.test('refusals by cause, with GitHub messages and headers', async (t) => {
  const s = await sim(t)
  const path = '/repos/acme/sample-app'
  const get = () => fetch(`${s.apiUrl}${path}`, { headers: auth })

  s.injectFault(refusalFault('sso_required', { path }))
  const sso = await get()
  t.equal(sso.status, 403)
  t.match(
    sso.headers.get('x-github-sso'),
    /^required; url=https:\/\/github\.com\/orgs\/acme\/sso\?authorization_request=/,
  )
  t.match(await sso.json(), { message: /SAML enforcement/ })

  s.injectFault(refusalFault('secondary_rate_limit', { path, retryAfter: 30 }))
  const secondary = await get()
  t.equal(secondary.status, 403)
  t.equal(secondary.headers.get('retry-after'), '30')
  t.match(await secondary.json(), { message: /secondary rate limit/ })

  s.injectFault(refusalFault('permission_missing', { path, permissions: 'contents=write' }))
  const perm = await get()
  t.equal(perm.headers.get('x-accepted-github-permissions'), 'contents=write')

  s.injectFault(refusalFault('scope_missing', { path, scopes: 'admin:org' }))
  t.equal((await get()).headers.get('x-accepted-oauth-scopes'), 'admin:org', 'the fault header wins')

  for (const kind of [
    'oauth_app_restricted',
    'ip_allow_list',
    'classic_pat_forbidden',
    'archived',
  ] as const) {
    s.injectFault(refusalFault(kind, { path }))
    const res = await get()
    t.equal(res.status, 403, kind)
    t.match(await res.json(), { message: /./ }, kind)
  }

  s.setRateLimit(10, { remaining: 0 })
  const primary = await get()
  t.equal(primary.status, 403)
  t.equal(primary.headers.get('x-ratelimit-remaining'), '0')
  t.match(await primary.json(), { message: /^API rate limit exceeded for user ID \d+\.$/ })
})
