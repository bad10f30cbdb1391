import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startTestSimulator, testConfig } from '@portico/testing'
import Fastify from 'fastify'
import t from 'tap'
import app from '../src/app.js'
import { serverOptions } from '../src/server-options.js'
import { build, signIn } from './helper.js'

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures')
const STATIC_DIR = path.join(FIXTURES, 'frontend')
const HTML = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' }

const { sim, env } = await startTestSimulator(t)

t.test('STATIC_DIR: the build is served, with its caching rules', async (t) => {
  const app = await build(t, { ...env, STATIC_DIR })
  const index = await app.inject({ url: '/', headers: HTML })
  t.equal(index.statusCode, 200)
  t.match(index.headers['content-type'], /^text\/html/)
  t.match(index.body, '<title>Test frontend</title>')
  t.equal(index.headers['cache-control'], 'no-cache', 'index.html is revalidated on every load')

  const asset = await app.inject({ url: '/assets/app-Xk3f9QpZ.js' })
  t.equal(asset.statusCode, 200)
  t.match(asset.headers['content-type'], /javascript/)
  t.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable', 'hashed assets: a year')
  t.equal(
    (await app.inject({ url: '/assets/app-Xk3f9QpZ.css' })).headers['cache-control'],
    asset.headers['cache-control'],
  )
  const plain = await app.inject({ url: '/robots.txt' })
  t.equal(plain.statusCode, 200)
  t.equal(plain.headers['cache-control'], 'no-cache', 'an unhashed file is revalidated')

  const head = await app.inject({ method: 'HEAD', url: '/', headers: HTML })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
})

t.test('STATIC_DIR: history-mode routes get index.html; API prefixes keep their JSON 404', async (t) => {
  const app = await build(t, { ...env, STATIC_DIR })
  for (const url of ['/pod/alpha/dev', '/pods', '/some/deep/route?x=1', '/assets/']) {
    const res = await app.inject({ url, headers: HTML })
    t.equal(res.statusCode, 200, url)
    t.match(res.body, '<title>Test frontend</title>', url)
    t.equal(res.headers['cache-control'], 'no-cache', url)
  }
  const json = await app.inject({ url: '/pod/alpha/dev', headers: { accept: 'application/json' } })
  t.equal(json.statusCode, 404, 'a client that does not accept HTML gets the JSON 404')
  t.equal(json.json().code, 'NOT_FOUND')
  const missingAsset = await app.inject({ url: '/assets/gone-Ab12Cd34.js', headers: { accept: '*/*' } })
  t.equal(missingAsset.statusCode, 404)

  for (const url of [
    '/api/nope',
    '/api/v1/nope',
    '/auth/nope',
    '/admin/nope',
    '/health/nope',
    '/docs/x',
    '/metrics/x',
    '/webhooks/x',
  ]) {
    const res = await app.inject({ url, headers: HTML })
    t.equal(res.statusCode, 404, url)
    t.match(res.headers['content-type'], /^application\/json/, url)
    const body = res.json()
    t.same(
      body,
      { statusCode: 404, code: 'NOT_FOUND', error: body.message, message: `Route GET ${url} not found` },
      url,
    )
  }
  t.match((await app.inject({ url: '/api/pods', headers: HTML })).headers['content-type'], /json/)
  t.equal(
    (await app.inject({ url: '/health/live', headers: HTML })).json().status,
    'ok',
    'API routes still answer',
  )
  const post = await app.inject({ method: 'POST', url: '/pod/alpha/dev', headers: HTML })
  t.equal(post.statusCode, 404, 'only GET and HEAD are served')
})

t.test('STATIC_DIR: no listings, no dotfiles, no way out of the folder', async (t) => {
  const app = await build(t, { ...env, STATIC_DIR })
  const listing = await app.inject({ url: '/assets/', headers: { accept: 'application/json' } })
  t.equal(listing.statusCode, 404)
  t.notMatch(listing.body, 'app-Xk3f9QpZ')
  for (const url of [
    '/.secret',
    '/..%2foutside-secret.txt',
    '/%2e%2e/outside-secret.txt',
    '/assets/..%2f..%2foutside-secret.txt',
    '/..%5coutside-secret.txt',
    '/%2e%2e%2f%2e%2e%2f%2e%2e%2fpackage.json',
    '/assets/%00.js',
  ]) {
    for (const headers of [HTML, { accept: '*/*' }]) {
      const res = await app.inject({ url, headers })
      t.notMatch(res.body, /TOPSECRET_OUTSIDE|SECRET_IN_DOTFILE|"workspaces"/, url)
      t.ok(
        res.statusCode === 404 ||
          res.statusCode === 400 ||
          res.statusCode === 403 ||
          res.body.includes('<title>Test frontend'),
        `${url} ${res.statusCode}`,
      )
    }
  }
})

t.test('STATIC_DIR must name a folder with index.html', async (t) => {
  const config = await testConfig(t, { ...env, STATIC_DIR: FIXTURES })
  const fastify = Fastify(serverOptions(config, false))
  await t.rejects(async () => {
    await fastify.register(app, { config })
    await fastify.ready()
  }, /STATIC_DIR must be a folder with an index.html/)
  await fastify.close().catch(() => {})
})

t.test('without STATIC_DIR, GET / is a landing page: sign in, then the user', async (t) => {
  const app = await build(t, env)
  const anonymous = await app.inject({ url: '/', headers: HTML })
  t.equal(anonymous.statusCode, 200)
  t.match(anonymous.headers['content-type'], /^text\/html/)
  t.match(anonymous.body, '<h1>Portico</h1>')
  t.match(anonymous.body, '<a class="sign-in" href="/auth/login">Sign in with GitHub</a>')
  t.match(anonymous.body, 'href="/admin/queues"', 'Bull Board exists, so it is linked')
  t.match(anonymous.body, 'href="/docs"', 'the API reference exists, so it is linked')

  const { cookie, location } = await signIn(app, sim, 'octocat')
  t.equal(location, '/', 'after sign-in a person lands on the landing page')
  const signedIn = await app.inject({ url: '/', headers: { ...HTML, cookie } })
  t.match(signedIn.body, /Signed in as <strong>[^<]+<\/strong> \(@octocat\)/)
  t.notMatch(signedIn.body, 'Sign in with GitHub')
  t.match(signedIn.body, 'action="/auth/logout"')

  const json = await app.inject({ url: '/', headers: { accept: 'application/json', cookie } })
  t.match(json.json(), { name: 'Portico', user: { login: 'octocat' }, links: { queues: '/admin/queues' } })
  const unknown = await app.inject({ url: '/pod/alpha/dev', headers: HTML })
  t.equal(unknown.statusCode, 404, 'no SPA fallback without a build')
  t.equal(unknown.json().code, 'NOT_FOUND')
})

t.test('the landing page runs no script and is never cached', async (t) => {
  const app = await build(t, env)
  const { cookie } = await signIn(app, sim, 'octocat')
  const res = await app.inject({ url: '/', headers: { ...HTML, cookie } })
  t.notMatch(res.body, '<script')
  t.match(res.headers['content-security-policy'], "default-src 'none'")
  t.equal(res.headers['cache-control'], 'no-store')
})
