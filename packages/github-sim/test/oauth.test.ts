import { createHash, randomBytes } from 'node:crypto'
import t from 'tap'
import { octokit, sim } from './fixtures/sim.js'

const CLIENT = 'Iv1.portico-dev'
const SECRET = 'portico-dev-secret'

t.test('OAuth web flow', async (t) => {
  const s = await sim(t)
  const redirect = 'http://127.0.0.1:45678/auth/callback'

  const authorize = async (params: Record<string, string>) => {
    const u = new URL(`${s.url}/login/oauth/authorize`)
    for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v)
    return fetch(u, { redirect: 'manual' })
  }
  const codeFrom = (res: Response) =>
    new URL(res.headers.get('location') ?? '').searchParams.get('code') ?? ''
  const exchange = async (body: Record<string, string>, json = true) => {
    const res = await fetch(`${s.url}/login/oauth/access_token`, {
      method: 'POST',
      headers: json
        ? { accept: 'application/json', 'content-type': 'application/json' }
        : { 'content-type': 'application/x-www-form-urlencoded' },
      body: json ? JSON.stringify(body) : new URLSearchParams(body).toString(),
    })
    t.equal(res.status, 200, 'token endpoint answers 200 even on errors')
    return json
      ? ((await res.json()) as Record<string, string>)
      : Object.fromEntries(new URLSearchParams(await res.text()))
  }

  t.test('without PKCE, JSON response, token works for REST', async (t) => {
    const res = await authorize({
      client_id: CLIENT,
      redirect_uri: redirect,
      scope: 'read:user repo',
      state: 'xyz',
      login: 'hubot',
    })
    t.equal(res.status, 302)
    const loc = new URL(res.headers.get('location') ?? '')
    t.equal(`${loc.origin}${loc.pathname}`, redirect)
    t.equal(loc.searchParams.get('state'), 'xyz')
    const out = await exchange({
      client_id: CLIENT,
      client_secret: SECRET,
      code: codeFrom(res),
      redirect_uri: redirect,
    })
    t.match(out.access_token, /^gho_[A-Za-z0-9]{36}$/)
    t.equal(out.token_type, 'bearer')
    t.equal(out.scope, 'read:user,repo')
    const me = await octokit(s, out.access_token).rest.users.getAuthenticated()
    t.equal(me.data.login, 'hubot')
    t.equal(me.headers['x-oauth-scopes'], 'read:user, repo')

    const again = await exchange({ client_id: CLIENT, client_secret: SECRET, code: codeFrom(res) })
    t.equal(again.error, 'bad_verification_code', 'codes are single-use')
    t.ok(again.error_description && again.error_uri)
  })

  t.test('PKCE S256, form response, default login', async (t) => {
    const verifier = randomBytes(32).toString('base64url')
    const challenge = createHash('sha256').update(verifier).digest('base64url')
    const start = () =>
      authorize({
        client_id: CLIENT,
        redirect_uri: redirect,
        state: 's',
        code_challenge: challenge,
        code_challenge_method: 'S256',
      })
    const bad = await exchange(
      { client_id: CLIENT, client_secret: SECRET, code: codeFrom(await start()), code_verifier: 'wrong' },
      false,
    )
    t.equal(bad.error, 'bad_verification_code', 'wrong verifier')
    const missing = await exchange(
      { client_id: CLIENT, client_secret: SECRET, code: codeFrom(await start()) },
      false,
    )
    t.equal(missing.error, 'bad_verification_code', 'missing verifier')
    const ok = await exchange(
      { client_id: CLIENT, client_secret: SECRET, code: codeFrom(await start()), code_verifier: verifier },
      false,
    )
    t.match(ok.access_token, /^gho_/)
    t.equal(ok.scope, '')
    const me = await octokit(s, ok.access_token).rest.users.getAuthenticated()
    t.equal(me.data.login, 'octocat', 'seed defaultLogin')
  })

  t.test('wrong client secret and redirect_uri mismatch', async (t) => {
    const res = await authorize({ client_id: CLIENT, redirect_uri: redirect })
    const wrong = await exchange({ client_id: CLIENT, client_secret: 'nope', code: codeFrom(res) })
    t.equal(wrong.error, 'incorrect_client_credentials')
    const mismatch = await exchange({
      client_id: CLIENT,
      client_secret: SECRET,
      code: codeFrom(res),
      redirect_uri: 'http://127.0.0.1:45678/other',
    })
    t.equal(mismatch.error, 'redirect_uri_mismatch')

    const foreign = await authorize({
      client_id: CLIENT,
      redirect_uri: 'https://evil.example/auth/callback',
      state: 'q',
    })
    t.equal(foreign.status, 302)
    const loc = new URL(foreign.headers.get('location') ?? '')
    t.equal(loc.origin, 'http://localhost:3000', 'sent back to the registered callback')
    t.equal(loc.searchParams.get('error'), 'redirect_uri_mismatch')
    t.equal(loc.searchParams.get('state'), 'q')

    const unknown = await authorize({ client_id: 'Iv1.nope' })
    t.equal(unknown.status, 404)
  })

  t.test('codes expire after 10 minutes', async (t) => {
    const res = await authorize({ client_id: CLIENT, redirect_uri: redirect })
    const realNow = Date.now
    Date.now = () => realNow() + 10 * 60 * 1000 + 1000
    t.teardown(() => {
      Date.now = realNow
    })
    const out = await exchange({ client_id: CLIENT, client_secret: SECRET, code: codeFrom(res) })
    Date.now = realNow
    t.equal(out.error, 'bad_verification_code')
  })

  t.test('ledger records oauth requests', async (t) => {
    t.ok(s.ledger.count({ kind: 'oauth', route: 'POST /login/oauth/access_token' }) > 0)
  })
})

t.test('authorize page when autoApprove is off', async (t) => {
  const s = await sim(t, { autoApprove: false })
  const page = await fetch(`${s.url}/login/oauth/authorize?client_id=${CLIENT}&login=monalisa&state=st`)
  t.equal(page.status, 200)
  const html = await page.text()
  t.match(html, /monalisa/)
  t.match(html, /<form method="post"/)
  const submit = await fetch(`${s.url}/login/oauth/authorize`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      client_id: CLIENT,
      login: 'monalisa',
      state: 'st',
      authorize: '1',
    }).toString(),
  })
  t.equal(submit.status, 302)
  const loc = new URL(submit.headers.get('location') ?? '')
  t.equal(`${loc.origin}${loc.pathname}`, 'http://localhost:3000/auth/callback')
  t.ok(loc.searchParams.get('code'))
})
