import { randomUUID } from 'node:crypto'
import t from 'tap'
import { requiresUser } from '../../src/plugins/app/auth.js'
import { build, buildWithRoutes } from '../helper.js'

// Every route that refuses anonymous callers refuses them first: 401 NOT_AUTHENTICATED before
// the body is parsed and before params, query or body are validated, so an anonymous caller
// learns nothing of a route's schema (found by a review: an anonymous `POST /api/v1/tenants`
// with an invalid body was answered 400).
const { server, routes } = await buildWithRoutes(t, { GH_REPO: 'acme/infra-specs' })

const endpoints = routes.flatMap((r) =>
  (Array.isArray(r.method) ? r.method : [r.method])
    .filter((m) => m !== 'HEAD' && m !== 'OPTIONS')
    .map((method) => ({ method, url: r.url, preHandler: r.preHandler, auth: r.config?.auth })),
)
const withParams = (url: string, value: () => string) => url.replace(/:([A-Za-z0-9_]+)/g, () => value())
const isWrite = (method: string) => !['GET', 'HEAD', 'OPTIONS'].includes(method)

/** An anonymous request with well-formed params and no body. */
const plain = (method: string, url: string) =>
  server.inject({ method: method as 'GET', url: withParams(url, randomUUID) })
/** The same request with params, query and body that fail validation, and a body that is not JSON. */
const malformed = (method: string, url: string) =>
  server.inject({
    method: method as 'GET',
    url: `${withParams(url, () => 'not%20a%20valid%20id%00')}?limit=-1&page=x&${'q'.repeat(50)}=1`,
    ...(isWrite(method) ? { headers: { 'content-type': 'application/json' }, payload: '{"name": ' } : {}),
  })

t.test('routes that refuse anonymous callers do so before validating anything', async (t) => {
  const refusing: string[] = []
  for (const { method, url } of endpoints) {
    if ((await plain(method, url)).statusCode !== 401) continue
    refusing.push(`${method} ${url.replace(/\/$/, '')}`)
    const res = await malformed(method, url)
    t.equal(res.statusCode, 401, `${method} ${url}: 401 before validation`)
    // /metrics and webhooks refuse with their own codes (a bearer token, a signature).
    if (url.startsWith('/api/')) t.equal(res.json().code, 'NOT_AUTHENTICATED', `${method} ${url}`)
  }
  // The example from the review, a project route, a tenant route and the connection folder.
  for (const route of [
    'POST /api/v1/tenants',
    'POST /api/v1/tenants/:tenantId/projects',
    'PUT /api/v1/projects/:projectId/members/:login',
    'POST /api/v1/projects/:projectId/github',
    'POST /api/pod',
  ]) {
    t.ok(refusing.includes(route), `${route} is among them`)
  }
})

t.test('every route marked as refusing anonymous callers answers them 401 first', async (t) => {
  const marked = endpoints.filter((e) => requiresUser(e.preHandler) || e.auth !== undefined)
  t.ok(marked.length >= 10, `${marked.length} routes`)
  for (const { method, url } of marked) {
    t.equal((await malformed(method, url)).statusCode, 401, `${method} ${url}`)
  }
})

t.test('reads that may act as the service account: validated first when the fallback is on', async (t) => {
  const reader = await build(t, {
    GH_REPO: 'acme/infra-specs',
    GH_TOKEN: 'ghp_porticobot00000000000000000000000001',
    ALLOW_SERVICE_TOKEN_FALLBACK: 'true',
  })
  for (const url of ['/api/pod/Bad%20Name/dev', '/api/pods/Bad%20Name/dev', '/api/v1/pods/Bad%20Name/dev']) {
    const res = await reader.inject({ url })
    t.equal(res.statusCode, 400, `${url}: the anonymous read is allowed, so its input is checked`)
    t.equal((await server.inject({ url })).statusCode, 401, `${url}: without the fallback, 401 first`)
  }
  const write = await reader.inject({
    method: 'POST',
    url: '/api/pod',
    headers: { 'content-type': 'application/json' },
    payload: '{"customer": ',
  })
  t.equal(write.statusCode, 401, 'no anonymous write, even with the fallback on')
})
