import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import helmet from 'helmet'
import t, { type Test } from 'tap'
import { helmetHeaders, strictSecurityHeaders } from '../src/plugins/external/helmet.js'
import { build } from './helper.js'

/** What helmet's middleware really puts on a response of a running server. */
async function realHelmetHeaders(t: Test, options?: Parameters<typeof helmet>[0]) {
  const middleware = helmet(options)
  const server = createServer((req, res) => {
    res.setHeader('x-powered-by', 'something')
    middleware(req, res, () => res.end('ok'))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)
  await res.text()
  const skip = new Set(['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding'])
  return Object.fromEntries([...res.headers].filter(([k]) => !skip.has(k)))
}

t.test('the recorded headers are exactly what helmet sets on a real response', async (t) => {
  const strict = await realHelmetHeaders(t)
  t.ok(strict['content-security-policy'], 'a policy was set')
  t.notOk('x-powered-by' in strict, 'helmet removes X-Powered-By')
  t.same(helmetHeaders(), strict, 'default policy')
  const options = { contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'self'"] } } }
  t.same(helmetHeaders(options), await realHelmetHeaders(t, options), 'custom policy')
})

t.test('every kind of answer carries them: a read, a refusal, a missing route, a crash', async (t) => {
  const app = await build(t, {}, (server) => {
    server.get('/test/crash', async () => {
      throw new Error('internal detail')
    })
  })
  const expected = strictSecurityHeaders(false)
  for (const url of ['/health/live', '/api/v1/tenants', '/no/such/route', '/test/crash']) {
    const res = await app.inject({ url })
    for (const [name, value] of Object.entries(expected)) {
      t.equal(res.headers[name], value, `${url} (${res.statusCode}): ${name}`)
    }
  }
})

t.test('HSTS and upgrade-insecure-requests only for an https PUBLIC_URL', async (t) => {
  // Over http://localhost they send a browser to https for the page's own files, which fail there.
  for (const [publicUrl, https] of [
    ['http://localhost:3000', false],
    ['https://portico.example.com', true],
  ] as const) {
    const app = await build(t, { PUBLIC_URL: publicUrl })
    for (const url of ['/health/live', '/docs', '/no/such/route', '/api/v1/tenants/%E0%A4%A/projects']) {
      const res = await app.inject({ url })
      const csp = String(res.headers['content-security-policy'])
      t.equal('strict-transport-security' in res.headers, https, `${publicUrl} ${url}: HSTS`)
      if (!url.startsWith('/docs'))
        t.equal(csp.includes('upgrade-insecure-requests'), https, `${publicUrl} ${url}: upgrade`)
      t.match(csp, /default-src/, `${publicUrl} ${url}: a policy all the same`)
    }
  }
})

t.test('the pages with a relaxed policy still load nothing from another origin', async (t) => {
  // Bull Board links Google Fonts; the policy allowed any https: origin for styles, fonts and images.
  const app = await build(t, { PUBLIC_URL: 'https://portico.example.com' })
  for (const url of ['/docs', '/docs/static/index.html', '/admin/queues']) {
    const csp = String((await app.inject({ url })).headers['content-security-policy'])
    t.match(csp, /script-src 'self' 'unsafe-inline'/, `${url}: relaxed`)
    const directives = csp.split(';').map((d) => d.trim())
    t.same(
      directives.filter((d) => / (https?:|\*)( |$)/.test(d)),
      [],
      `${url}: no directive names another origin`,
    )
  }
})
