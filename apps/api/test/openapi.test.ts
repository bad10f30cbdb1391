import { readFile } from 'node:fs/promises'
import { Validator } from '@seriousme/openapi-schema-validator'
import t from 'tap'
import { buildWithRoutes } from './helper.js'

// Fastify's own route table, seen through onRoute before any route is registered.
const { server, routes } = await buildWithRoutes(t, { GH_REPO: 'acme/infra-specs' })

/** Routes the document is about: not HEAD twins, not the reference itself, not Bull Board. */
const documented = routes.flatMap((r) =>
  (Array.isArray(r.method) ? r.method : [r.method])
    .filter((m) => m !== 'HEAD')
    .filter(() => !r.url.startsWith('/docs') && !r.url.startsWith('/admin'))
    .map((method) => ({ method, url: r.url, schema: r.schema as Record<string, unknown> | undefined })),
)
const toOpenApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/(.)\/$/, '$1')

t.test('GET /docs/json is a valid OpenAPI 3.1 document', async (t) => {
  const res = await server.inject({ url: '/docs/json' })
  t.equal(res.statusCode, 200)
  const doc = res.json()
  t.equal(doc.openapi, '3.1.0')
  const result = await new Validator().validate(doc)
  t.ok(result.valid, `valid: ${JSON.stringify(result.errors ?? null).slice(0, 2000)}`)
  t.match(doc.components.securitySchemes.session, { type: 'apiKey', in: 'cookie', name: 'portico_session' })
  t.ok(doc.components.schemas.ErrorBody, 'the error body is a component')
})

t.test('every route Fastify registers is in the document, with tags and error answers', async (t) => {
  const doc = (await server.inject({ url: '/docs/json' })).json()
  t.ok(documented.length > 20, `${documented.length} routes`)
  for (const { method, url } of documented) {
    const op = doc.paths[toOpenApiPath(url)]?.[method.toLowerCase()]
    t.ok(op, `${method} ${url} is documented`)
    if (!op) continue
    t.ok(op.tags?.length === 1, `${method} ${url} has a tag`)
    t.match(
      op.responses['4XX'],
      { content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } } },
      `${method} ${url} documents the error body`,
    )
  }
  const count = Object.values(doc.paths as Record<string, object>).reduce(
    (n, ops) => n + Object.keys(ops).length,
    0,
  )
  t.equal(count, documented.length, 'nothing documented that Fastify does not serve')
  const mine = doc.paths['/api/v1/projects/{projectId}/github'].get
  t.same(mine.security, [{ session: [] }], 'session-authenticated routes name the cookie scheme')
  t.notOk(doc.paths['/health/live'].get.security, 'probes are public')
  t.notOk(doc.paths['/webhooks/github'].post.security, 'deliveries prove themselves with their signature')
  t.notOk(doc.paths['/'].get.security, 'the landing page is public')
  t.same(doc.paths['/metrics'].get.security, [{ metricsToken: [] }], '/metrics takes the bearer token')
  t.match(doc.components.securitySchemes.metricsToken, { type: 'http', scheme: 'bearer' })
})

t.test('every route has request and response schemas (a new route without one fails here)', async (t) => {
  for (const { method, url, schema } of documented) {
    const key = `${method} ${url}`
    const response = (schema?.response ?? {}) as Record<string, unknown>
    t.ok(
      Object.keys(response).some((code) => /^[23]/.test(code)),
      `${key} has a success response schema`,
    )
    if (url.includes(':')) t.ok(schema?.params, `${key} has a params schema`)
    // Actions the frontend sends without a body (POST /auth/logout, POST /api/refresh) declare none.
    if (
      ['POST', 'PUT', 'PATCH'].includes(method) &&
      !url.startsWith('/auth/') &&
      !url.startsWith('/api/refresh')
    ) {
      t.ok(schema?.body, `${key} has a body schema`)
    }
  }
})

t.test('header schemas name headers in lower case, as Node delivers them', async (t) => {
  // Fastify lowercases a headers schema's names only with its default validator compiler; the
  // API's (server-options.ts, validatorByPart) leaves them as written, so 'X-GitHub-Event' would
  // never match.
  let checked = 0
  for (const { method, url, schema } of documented) {
    const headers = schema?.headers as
      | { properties?: Record<string, unknown>; required?: string[] }
      | undefined
    for (const name of [...Object.keys(headers?.properties ?? {}), ...(headers?.required ?? [])]) {
      t.equal(name, name.toLowerCase(), `${method} ${url}: header ${name}`)
      checked++
    }
  }
  t.ok(checked > 0, 'some route declares headers')
})

t.test('GET /docs serves the browsable reference', async (t) => {
  const res = await server.inject({ url: '/docs/' })
  t.equal(res.statusCode, 200)
  t.match(String(res.headers['content-type']), /text\/html/)
})

t.test('docs/openapi.json is the document the app serves (npm run openapi)', async (t) => {
  const committed = JSON.parse(await readFile(new URL('../../../docs/openapi.json', import.meta.url), 'utf8'))
  const served = (await server.inject({ url: '/docs/json' })).json()
  t.same(committed, served)
})
