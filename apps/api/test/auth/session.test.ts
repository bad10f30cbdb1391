import { decrypt, loggerOptions } from '@portico/core'
import { startTestSimulator, testConfig } from '@portico/testing'
import Fastify from 'fastify'
import t from 'tap'
import app from '../../src/app.js'
import { sessionParser } from '../../src/plugins/external/session.js'
import { serverOptions } from '../../src/server-options.js'
import { build, signIn, writeHeaders } from '../helper.js'

// One simulator for the whole file; each test builds its own app (database, queue prefix).
const { sim, env } = await startTestSimulator(t)

/** The decrypted GitHub token of a session, read from Redis. */
async function tokenOfSession(server: Awaited<ReturnType<typeof build>>, cookie: string): Promise<string> {
  const value = decodeURIComponent(cookie.split('=').slice(1).join('='))
  const id = value.replace(/^s:/, '').replace(/\.[^.]*$/, '')
  const stored = await server.redis.get(`${server.config.REDIS_PREFIX}:sess:${id}`)
  return decrypt(server.config.keyring, JSON.parse(String(stored)).githubToken)
}

/** A test-only route acting with the request's GitHub identity. */
const githubUserRoute = (server: Awaited<ReturnType<typeof build>>) => {
  server.get('/test/github-user', async (request) => {
    const actor = await request.github()
    const { data } = await actor.octokit.rest.users.getAuthenticated()
    return { login: data.login, source: actor.source }
  })
}

t.test('logout destroys the server-side session; the old cookie is worthless', async (t) => {
  const server = await build(t, env)
  const { cookie } = await signIn(server, sim, 'octocat')
  t.equal((await server.inject({ url: '/api/auth/user', headers: { cookie } })).statusCode, 200)

  const out = await server.inject({
    method: 'POST',
    url: '/auth/logout',
    headers: writeHeaders(server, cookie),
  })
  t.equal(out.statusCode, 200)
  t.same(out.json(), { success: true })
  const cleared = (out.cookies as { name: string; value: string }[]).find((c) => c.name === 'portico_session')
  t.equal(cleared?.value, '', 'the cookie is cleared')

  const replay = await server.inject({ url: '/api/auth/user', headers: { cookie } })
  t.equal(replay.statusCode, 401)
  t.equal(replay.json().code, 'NOT_AUTHENTICATED')
  t.equal(
    (
      await server.inject({
        method: 'POST',
        url: '/api/v1/tenants',
        headers: writeHeaders(server, cookie),
        payload: { slug: 'x-y', name: 'X' },
      })
    ).statusCode,
    401,
  )
  const again = await server.inject({ method: 'POST', url: '/auth/logout' })
  t.equal(again.statusCode, 200, 'logging out without a session is harmless')
})

t.test("the landing page's Sign out form signs out and goes back to the page", async (t) => {
  const server = await build(t, env)
  const { cookie } = await signIn(server, sim, 'octocat')
  const page = await server.inject({ url: '/', headers: { cookie, accept: 'text/html' } })
  t.match(page.body, '<form method="post" action="/auth/logout">', 'the page holds the form')
  // What a browser sends for that form: an empty urlencoded body, with its Origin.
  const out = await server.inject({
    method: 'POST',
    url: '/auth/logout',
    payload: '',
    headers: { ...writeHeaders(server, cookie), 'content-type': 'application/x-www-form-urlencoded' },
  })
  t.equal(out.statusCode, 303, out.body)
  t.equal(out.headers.location, '/')
  t.equal((await server.inject({ url: '/api/auth/user', headers: { cookie } })).statusCode, 401, 'signed out')
  // A form from another site is still refused by the Origin check.
  const { cookie: other } = await signIn(server, sim, 'octocat')
  const forged = await server.inject({
    method: 'POST',
    url: '/auth/logout',
    payload: '',
    headers: {
      cookie: other,
      origin: 'https://evil.example',
      'content-type': 'application/x-www-form-urlencoded',
    },
  })
  t.equal(forged.statusCode, 403)
  t.equal((await server.inject({ url: '/api/auth/user', headers: { cookie: other } })).statusCode, 200)
  // What a browser really sends for a form posted from another site: no cookie (SameSite=Lax).
  // The reviewer's example: the answer cleared the cookie, and the browser applied that.
  const crossSite = await server.inject({
    method: 'POST',
    url: '/auth/logout',
    payload: '',
    headers: { origin: 'https://evil.example', 'content-type': 'Application/X-WWW-Form-Urlencoded' },
  })
  t.equal(crossSite.statusCode, 303, 'a form post, whatever the case of its content-type')
  t.notOk(crossSite.headers['set-cookie'], 'no cookie is cleared')
  t.equal((await server.inject({ url: '/api/auth/user', headers: { cookie: other } })).statusCode, 200)
})

t.test('a revoked token ends the session with 401 TOKEN_EXPIRED', async (t) => {
  const server = await build(t, { ...env, ALLOW_SERVICE_TOKEN_FALLBACK: 'true' }, githubUserRoute)
  const { cookie } = await signIn(server, sim, 'hubot')
  const ok = await server.inject({ url: '/test/github-user', headers: { cookie } })
  t.same(ok.json(), { login: 'hubot', source: 'user' }, 'acts with the user token')

  sim.revokeToken(await tokenOfSession(server, cookie))
  const expired = await server.inject({ url: '/test/github-user', headers: { cookie } })
  t.equal(expired.statusCode, 401)
  t.equal(expired.json().code, 'TOKEN_EXPIRED')
  t.notMatch(expired.body, /gh[op]_/, 'no token in the error')
  const after = await server.inject({ url: '/api/auth/user', headers: { cookie } })
  t.equal(after.statusCode, 401, 'the session is gone')
  t.equal(after.json().code, 'NOT_AUTHENTICATED')
  // Anonymous now: the service token serves the same read (the fallback is turned on here).
  const anon = await server.inject({ url: '/test/github-user', headers: { cookie } })
  t.same(anon.json(), { login: 'portico-bot', source: 'service' })
})

t.test('sessions survive a restart and are shared by several API processes', async (t) => {
  const config = await testConfig(t, env)
  const start = async () => {
    const server = Fastify(serverOptions(config, false))
    await server.register(app, { config })
    await server.ready()
    return server
  }
  const first = await start()
  const { cookie } = await signIn(first, sim, 'octocat')
  await first.close()

  const [a, b] = await Promise.all([start(), start()])
  t.teardown(() => Promise.all([a.close(), b.close()]))
  for (const server of [a, b]) {
    const res = await server.inject({ url: '/api/auth/user', headers: { cookie } })
    t.equal(res.statusCode, 200)
    t.equal(res.json().login, 'octocat')
  }
  await a.inject({ method: 'POST', url: '/auth/logout', headers: { cookie } })
  t.equal(
    (await b.inject({ url: '/api/auth/user', headers: { cookie } })).statusCode,
    401,
    'logout is seen by all',
  )
})

t.test('logout revokes the OAuth token at GitHub; a failed revocation is still a logout', async (t) => {
  const server = await build(t, env)
  const { cookie } = await signIn(server, sim, 'octocat')
  const token = await tokenOfSession(server, cookie)
  const asUser = () => fetch(`${sim.apiUrl}/user`, { headers: { authorization: `token ${token}` } })
  t.equal((await asUser()).status, 200)
  sim.ledger.clear()
  const out = await server.inject({
    method: 'POST',
    url: '/auth/logout',
    headers: writeHeaders(server, cookie),
  })
  t.equal(out.statusCode, 200)
  t.equal(sim.ledger.count({ route: 'DELETE /applications/{client_id}/token' }), 1, 'one revocation')
  t.equal((await asUser()).status, 401, 'the token is dead at GitHub')

  // GitHub failing the revocation: logged, and the person is signed out all the same.
  const again = await signIn(server, sim, 'octocat')
  const token2 = await tokenOfSession(server, again.cookie)
  sim.injectFault({ method: 'DELETE', path: /^\/applications\//, status: 500 })
  const failed = await server.inject({
    method: 'POST',
    url: '/auth/logout',
    headers: writeHeaders(server, again.cookie),
  })
  t.equal(failed.statusCode, 200)
  t.same(failed.json(), { success: true })
  t.equal((await server.inject({ url: '/api/auth/user', headers: { cookie: again.cookie } })).statusCode, 401)
  const still = await fetch(`${sim.apiUrl}/user`, { headers: { authorization: `token ${token2}` } })
  t.equal(still.status, 200, 'the token survived the failed revocation (GitHub said no)')

  // Anonymous logout: nothing to revoke, still a success.
  sim.ledger.clear()
  const anon = await server.inject({ method: 'POST', url: '/auth/logout' })
  t.equal(anon.statusCode, 200)
  t.equal(sim.ledger.count({ route: 'DELETE /applications/{client_id}/token' }), 0)
})

t.test('Secure __Host- cookie when PUBLIC_URL is https, behind a trusted proxy', async (t) => {
  const https = { ...env, PUBLIC_URL: 'https://portico.example' }
  const proxied = await build(t, { ...https, TRUST_PROXY: 'true' })
  const res = await proxied.inject({ url: '/auth/login', headers: { 'x-forwarded-proto': 'https' } })
  t.equal(res.statusCode, 302)
  t.equal(
    new URL(String(res.headers.location)).searchParams.get('redirect_uri'),
    'https://portico.example/auth/callback',
  )
  const session = (res.cookies as { name: string; secure?: boolean; path?: string; domain?: string }[]).find(
    (c) => c.name === '__Host-portico_session',
  )
  t.equal(session?.secure, true, 'Secure flag')
  t.equal(session?.path, '/', '__Host- cookies have Path=/')
  t.equal(session?.domain, undefined, '__Host- cookies have no Domain')
  t.notOk(
    (res.cookies as { name: string }[]).some((c) => c.name === 'portico_session'),
    'no unprefixed cookie over https',
  )
  t.same(
    (res.cookies as { name: string }[]).map((c) => c.name),
    ['__Host-portico_session'],
    'the session cookie is the only cookie (the PKCE verifier stays server-side)',
  )

  const plain = await proxied.inject({ url: '/auth/login' })
  t.notOk(
    (plain.cookies as { name: string }[]).some((c) => c.name.endsWith('portico_session')),
    'never sent over plain http',
  )
  const untrusted = await build(t, https)
  const spoofed = await untrusted.inject({ url: '/auth/login', headers: { 'x-forwarded-proto': 'https' } })
  t.notOk(
    (spoofed.cookies as { name: string }[]).some((c) => c.name.endsWith('portico_session')),
    'X-Forwarded-Proto ignored without TRUST_PROXY',
  )
})

t.test(
  'no GitHub token, client secret, OAuth code or state in any log line, response or cookie',
  async (t) => {
    const config = await testConfig(t, { ...env, ALLOW_SERVICE_TOKEN_FALLBACK: 'true', LOG_LEVEL: 'trace' })
    const lines: string[] = []
    const server = Fastify(
      serverOptions(config, {
        ...loggerOptions('trace'),
        stream: { write: (line: string) => void lines.push(line) },
      }),
    )
    await server.register(app, { config })
    githubUserRoute(server as never)
    await server.ready()
    t.teardown(() => server.close())

    const bodies: string[] = []
    const { cookie } = await signIn(server, sim, 'octocat')
    const token = await tokenOfSession(server as never, cookie)
    for (const url of ['/api/auth/user', '/test/github-user']) {
      const res = await server.inject({ url, headers: { cookie } })
      bodies.push(res.body, JSON.stringify(res.headers))
    }
    sim.revokeToken(token)
    const expired = await server.inject({ url: '/test/github-user', headers: { cookie } })
    t.equal(expired.json().code, 'TOKEN_EXPIRED')
    bodies.push(expired.body, JSON.stringify(expired.headers))
    const service = await server.inject({ url: '/test/github-user' })
    t.equal(service.json().source, 'service', 'the service token was used too')
    bodies.push(service.body, JSON.stringify(service.headers))
    t.ok(
      lines.some((l) => l.includes('acting with the service identity')),
      'service access is logged',
    )

    t.ok(lines.length > 10, `captured ${lines.length} log lines`)
    const callbackLines = lines.filter((l) => l.includes('/auth/callback?'))
    t.ok(callbackLines.length > 0, 'the callback request is logged')
    for (const line of callbackLines) {
      t.match(line, 'code=[REDACTED]')
      t.match(line, 'state=[REDACTED]')
    }
    t.notOk(
      lines.some((l) => /[?&](code|state)=(?!\[REDACTED\])/.test(l)),
      'no OAuth code or state value in the logs',
    )
    t.ok(
      lines.some((l) => l.includes('signed in')),
      'the sign-in is logged',
    )
    for (const secret of [token, 'portico-dev-secret', env.GH_TOKEN as string]) {
      t.notOk(
        lines.some((l) => l.includes(secret)),
        'not in the logs',
      )
      t.notOk(
        bodies.some((b) => b.includes(secret)),
        'not in responses',
      )
      t.notOk(cookie.includes(secret), 'not in the cookie')
    }
  },
)

t.test('Redis away: a clear 503, never a 500', async (t) => {
  const server = await build(t, { ...env, REDIS_URL: 'redis://127.0.0.1:1' })
  const login = await server.inject({ url: '/auth/login' })
  t.equal(login.statusCode, 503, login.body)
  t.equal(login.json().code, 'SESSION_STORE_UNAVAILABLE')
  const me = await server.inject({
    url: '/api/auth/user',
    headers: { cookie: 'portico_session=s%3Aabc.def' },
  })
  t.equal(me.statusCode, 401, 'a cookie that does not verify is ignored')
  t.equal(
    (await server.inject({ url: '/api/auth/user' })).statusCode,
    401,
    'anonymous requests need no Redis',
  )
  const signed = encodeURIComponent(server.signCookie('a-session-id'))
  const lookup = await server.inject({
    url: '/api/auth/user',
    headers: { cookie: `portico_session=${signed}` },
  })
  t.equal(lookup.statusCode, 503, 'a valid session cookie needs the store')
  t.equal(lookup.json().code, 'SESSION_STORE_UNAVAILABLE')
})

t.test('a stored value that is not a session this API wrote is no session: 401, not 5xx', async (t) => {
  const server = await build(t, env)
  const { cookie } = await signIn(server, sim, 'octocat')
  const value = decodeURIComponent(cookie.split('=').slice(1).join('='))
  const key = `${server.config.REDIS_PREFIX}:sess:${value.replace(/^s:/, '').replace(/\.[^.]*$/, '')}`
  const good = JSON.parse(String(await server.redis.get(key)))
  t.equal((await server.inject({ url: '/api/auth/user', headers: { cookie } })).statusCode, 200)
  const corrupt: [string, string][] = [
    ['not JSON', '{"user":'],
    ['JSON null', 'null'],
    ['an array', '[]'],
    ['a string user', JSON.stringify({ ...good, user: 'octocat' })],
    ['a user without a login', JSON.stringify({ ...good, user: { ...good.user, login: undefined } })],
    ['a numeric login', JSON.stringify({ ...good, user: { ...good.user, login: 42 } })],
    ['an object name', JSON.stringify({ ...good, user: { ...good.user, name: { first: 'x' } } })],
    ['a fractional github_id', JSON.stringify({ ...good, user: { ...good.user, github_id: 1.5 } })],
    ['an object token', JSON.stringify({ ...good, githubToken: { iv: 'x' } })],
    // Keys @fastify/session would copy onto the Session (found by an adversarial review:
    // `__proto__` made the process exit, deep nesting overflowed the stack, `get` gave 500).
    ['a __proto__ key', `{"__proto__":{},${JSON.stringify(good).slice(1)}`],
    ['a get key', JSON.stringify({ ...good, get: 1 })],
    ['an isModified key', JSON.stringify({ ...good, isModified: 1 })],
    [
      'a deeply nested extra key',
      JSON.stringify({ ...good, x: 0 }).replace('0', `${'['.repeat(6000)}${']'.repeat(6000)}`),
    ],
    ['a user id that is not a UUID', JSON.stringify({ ...good, user: { ...good.user, id: 'nope' } })],
    ['an extra user key', JSON.stringify({ ...good, user: { ...good.user, admin: true } })],
    ['a bad cookie maxAge', JSON.stringify({ ...good, cookie: { ...good.cookie, originalMaxAge: 'abc' } })],
    ['a bad cookie sameSite', JSON.stringify({ ...good, cookie: { ...good.cookie, sameSite: 'bogus' } })],
    ['a string oauthPending', JSON.stringify({ ...good, oauthPending: 'x' })],
    ['a null pending sign-in', JSON.stringify({ ...good, oauthPending: [null] })],
    [
      'a numeric state',
      JSON.stringify({ ...good, oauthPending: [{ state: 1, verifier: 'v', expiresAt: 1 }] }),
    ],
    // A second review: stored cookie attributes are sent back in Set-Cookie (500 on every request,
    // or a weaker cookie), and a stored returnTo was redirected to as it stood (an open redirect).
    ['a cookie domain', JSON.stringify({ ...good, cookie: { ...good.cookie, domain: 'a;b' } })],
    ['a cookie path', JSON.stringify({ ...good, cookie: { ...good.cookie, path: '/;x' } })],
    ['a huge cookie maxAge', JSON.stringify({ ...good, cookie: { ...good.cookie, originalMaxAge: 1e300 } })],
    ['a script-readable cookie', JSON.stringify({ ...good, cookie: { ...good.cookie, httpOnly: false } })],
    ...['https://evil.example/', '//evil.example', '/日本', '/a\r\nX-Injected: 1'].map(
      (returnTo): [string, string] => [
        `a returnTo of ${JSON.stringify(returnTo)}`,
        JSON.stringify({ ...good, oauthPending: [{ state: 's', verifier: 'v', expiresAt: 1e15, returnTo }] }),
      ],
    ),
  ]
  for (const [what, raw] of corrupt) {
    await server.redis.set(key, raw, 'KEEPTTL')
    for (const url of ['/api/auth/user', '/api/v1/tenants']) {
      const res = await server.inject({ url, headers: { cookie } })
      t.equal(res.statusCode, 401, `${what}: ${url}`)
      t.equal(res.json().code, 'NOT_AUTHENTICATED', what)
    }
    const write = await server.inject({
      method: 'POST',
      url: '/api/v1/tenants',
      headers: { ...writeHeaders(server, cookie), 'content-type': 'application/json' },
      payload: JSON.stringify({ name: 'x', slug: 'x' }),
    })
    t.equal(write.statusCode, 401, `${what}: a write`)
    // A browser stuck with such a session can still sign in again.
    t.equal(
      (await server.inject({ url: '/auth/login', headers: { cookie } })).statusCode,
      302,
      `${what}: sign-in`,
    )
  }
  await server.redis.set(key, JSON.stringify(good), 'KEEPTTL')
  t.equal(
    (await server.inject({ url: '/api/auth/user', headers: { cookie } })).statusCode,
    200,
    'a good value works',
  )
})

t.test('a request in flight during logout cannot bring the session back', async (t) => {
  let entered!: () => void
  let release!: () => void
  const inHandler = new Promise<void>((resolve) => {
    entered = resolve
  })
  const gate = new Promise<void>((resolve) => {
    release = resolve
  })
  const server = await build(t, env, (s) => {
    s.get('/test/slow', async (request) => {
      entered()
      await gate
      return { login: request.user?.login }
    })
  })
  const { cookie } = await signIn(server, sim, 'octocat')
  const slow = server.inject({ url: '/test/slow', headers: { cookie } })
  await inHandler
  const out = await server.inject({
    method: 'POST',
    url: '/auth/logout',
    headers: writeHeaders(server, cookie),
  })
  t.equal(out.statusCode, 200)
  release()
  t.equal((await slow).json().login, 'octocat', 'the slow request finished as the user')
  const replay = await server.inject({ url: '/api/auth/user', headers: { cookie } })
  t.equal(replay.statusCode, 401, 'still logged out')
})

t.test('a loaded session is shared read-only: mutating it in place fails that request only', async (t) => {
  const server = await build(t, env, (s) => {
    s.get('/test/rename-in-place', async (request) => {
      const user = request.session.get('user') as { login: string }
      user.login = 'mallory'
      return { login: user.login }
    })
  })
  const { cookie } = await signIn(server, sim, 'octocat')
  const before = await server.inject({ url: '/api/auth/user', headers: { cookie } })
  t.equal(before.json().login, 'octocat')
  const mutate = await server.inject({ url: '/test/rename-in-place', headers: { cookie } })
  t.equal(mutate.statusCode, 500, 'the frozen session refuses the write')
  t.notMatch(mutate.body, /mallory|frozen|read only/i, 'no internals in the answer')
  const after = await server.inject({ url: '/api/auth/user', headers: { cookie } })
  t.equal(after.json().login, 'octocat', 'what the next request loads is unchanged')
})

t.test('parsed sessions are remembered only when signed in, and within bounds', async (t) => {
  const parse = sessionParser({ max: 100, maxSize: 4000, maxEntrySize: 1000 })
  const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`
  const signedIn = JSON.stringify({ user: { id: id(1), login: 'octocat' }, githubToken: 'sealed' })
  t.equal(parse(signedIn), parse(signedIn), 'the same object for the same text')
  t.ok(Object.isFrozen((parse(signedIn) as { user: object }).user), 'deep-frozen')
  const anonymous = JSON.stringify({ oauthPending: [{ state: 's', verifier: 'v', expiresAt: 1 }] })
  t.ok(parse(anonymous), 'a state-only session parses')
  t.not(parse(anonymous), parse(anonymous), 'state-only sessions are parsed each time')
  const big = JSON.stringify({ user: { id: id(2), login: 'x', name: 'x'.repeat(2000) } })
  t.ok(parse(big))
  t.not(parse(big), parse(big), 'an entry over maxEntrySize is not kept')
  t.equal(parse('{"user":'), undefined, 'not JSON: undefined')
  t.equal(parse(JSON.stringify({ user: { id: 'u1', login: 'x' } })), undefined, 'not a session: undefined')
  const first = JSON.stringify({ user: { id: id(3), login: 'first' } })
  const kept = parse(first)
  for (let i = 0; i < 200; i++) parse(JSON.stringify({ user: { id: id(10 + i), login: 'y'.repeat(100) } }))
  t.not(parse(first), kept, 'older entries leave once the total size is reached')
})

t.test('a session whose user row is gone (a restored database) gets 401 on writes, not 500', async (t) => {
  const server = await build(t, env)
  const { cookie } = await signIn(server, sim, 'octocat')
  await server.db.deleteFrom('users').where('login', '=', 'octocat').execute()
  const create = () =>
    server.inject({
      method: 'POST',
      url: '/api/v1/tenants',
      headers: { ...writeHeaders(server, cookie), 'content-type': 'application/json' },
      payload: JSON.stringify({ name: 'Acme', slug: 'acme' }),
    })
  const res = await create()
  t.equal(res.statusCode, 401)
  t.match(res.json(), { code: 'NOT_AUTHENTICATED', message: /Sign in again/ })
  const again = await signIn(server, sim, 'octocat')
  const created = await server.inject({
    method: 'POST',
    url: '/api/v1/tenants',
    headers: { ...writeHeaders(server, again.cookie), 'content-type': 'application/json' },
    payload: JSON.stringify({ name: 'Acme', slug: 'acme' }),
  })
  t.equal(created.statusCode, 201, 'signing in again makes the user anew')
})
