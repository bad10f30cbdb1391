import t from 'tap'
import { build } from './helper.js'

t.test('unknown routes answer 404 NOT_FOUND in the common error shape', async (t) => {
  const app = await build(t)
  const res = await app.inject({ url: '/nope?x=1' })
  t.equal(res.statusCode, 404)
  t.same(res.json(), {
    statusCode: 404,
    code: 'NOT_FOUND',
    error: 'Route GET /nope not found',
    message: 'Route GET /nope not found',
  })
  const api = await app.inject({ url: '/api/nope', headers: { accept: 'text/html' } })
  t.equal(api.statusCode, 404)
  t.equal(api.json().error, 'Route GET /api/nope not found', 'API prefixes answer JSON even to browsers')
})

t.test('an unknown route answers 404 without reading its body', async (t) => {
  const app = await build(t)
  for (const [what, payload] of [
    ['broken JSON', '{"a":'],
    ['a body over the 1 MB limit', `{"a":"${'x'.repeat(2 * 1024 * 1024)}"}`],
  ] as const) {
    const res = await app.inject({
      method: 'POST',
      url: '/nope',
      headers: { 'content-type': 'application/json' },
      payload,
    })
    t.equal(res.statusCode, 404, `${what}: ${res.body.slice(0, 200)}`)
    t.equal(res.json().code, 'NOT_FOUND', what)
    t.equal(res.json().message, 'Route POST /nope not found', what)
  }
  const chunked = await app.inject({
    method: 'PUT',
    url: '/api/nope',
    headers: { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' },
    payload: 'hello',
  })
  t.equal(chunked.statusCode, 404, 'a chunked body of a type no route takes: 404, not 415')
})

t.test('a 500 stays generic when answering it fails too (a logger that throws)', async (t) => {
  const app = await build(t, {}, (app) => {
    app.get('/boom/logger', async (request) => {
      request.log = Object.assign(Object.create(request.log), {
        error: () => {
          throw new Error('logger exploded near db password=hunter2')
        },
      })
      throw new Error('the first failure')
    })
  })
  const res = await app.inject({ url: '/boom/logger' })
  t.equal(res.statusCode, 500)
  t.match(res.json(), { statusCode: 500, code: 'INTERNAL_ERROR', requestId: String })
  t.notMatch(res.body, /hunter2|exploded|first failure|Internal Server Error/)
})

t.test('every error path carries the human sentence in `error`; 5xx stays generic', async (t) => {
  const { AppError } = await import('@portico/core')
  const app = await build(t, {}, (app) => {
    app.get('/boom/app', async () => {
      throw new AppError(409, 'SOMETHING_EXISTS', 'It exists already.')
    })
    app.get('/boom/internal', async () => {
      throw new Error('connect ECONNREFUSED 10.0.0.5:5432 password=hunter2')
    })
    app.post(
      '/boom/validate',
      { schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } } },
      async () => ({}),
    )
  })
  const conflict = await app.inject({ url: '/boom/app' })
  t.same(conflict.json(), {
    statusCode: 409,
    code: 'SOMETHING_EXISTS',
    error: 'It exists already.',
    message: 'It exists already.',
  })
  const internal = await app.inject({ url: '/boom/internal' })
  t.equal(internal.statusCode, 500)
  t.equal(internal.json().code, 'INTERNAL_ERROR')
  t.notMatch(internal.body, /ECONNREFUSED|hunter2|5432/)
  t.equal(internal.json().error, internal.json().message)
  t.match(internal.json().error, /internal error occurred/)
  t.ok(internal.json().requestId, 'carries the request id for the logs')
  const invalid = await app.inject({ method: 'POST', url: '/boom/validate', payload: {} })
  t.equal(invalid.statusCode, 400)
  t.equal(invalid.json().code, 'VALIDATION_ERROR')
  t.equal(invalid.json().message, 'body.name is required')
  t.equal(invalid.json().error, 'body.name is required')
  const badJson = await app.inject({
    method: 'POST',
    url: '/boom/validate',
    payload: '{"name":',
    headers: { 'content-type': 'application/json' },
  })
  t.equal(badJson.statusCode, 400)
  t.equal(badJson.json().code, 'INVALID_JSON')
  t.equal(badJson.json().message, 'The request body is not valid JSON.')
  t.equal(badJson.json().error, badJson.json().message)
  t.notOk(['Bad Request', 'Not Found', 'Conflict'].includes(badJson.json().error), 'never the reason phrase')
})

/**
 * Sends `head` (request line and headers) on a raw socket to a listening server, with `Host: x`
 * unless `host` says otherwise; the answer's status and body (status NaN: no answer).
 */
async function rawRequest(
  port: number,
  head: string,
  host = 'Host: x\r\n',
): Promise<{ status: number; body: string }> {
  const { connect } = await import('node:net')
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(`${head}\r\n${host}Connection: close\r\n\r\n`))
    let text = ''
    socket.on('data', (chunk) => {
      text += chunk.toString()
    })
    socket.on('error', reject)
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1])
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) })
    })
  })
}

t.test(
  'a body that never finishes arriving gets 408 and its connection closed (REQUEST_TIMEOUT_MS)',
  async (t) => {
    // An outside review's example: Fastify's default is no limit, and unfinished webhook bodies
    // (anonymous, up to 25 MB each) stayed in memory for as long as their senders liked.
    const app = await build(t, {
      REQUEST_TIMEOUT_MS: '1000',
      GITHUB_WEBHOOK_SECRET: 'a-webhook-secret-for-tests',
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = (app.server.address() as { port: number }).port
    const { connect } = await import('node:net')
    const stalled = (head: string) =>
      new Promise<{ text: string; closed: boolean }>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => socket.write(head))
        let text = ''
        socket.on('data', (chunk) => {
          text += chunk.toString()
        })
        socket.on('error', () => {})
        socket.on('close', () => resolve({ text, closed: true }))
        // Far beyond the deadline and the once-a-second check; the test's own limit is tap's.
        setTimeout(() => resolve({ text, closed: false }), 60_000).unref()
      })
    for (const [what, head] of [
      [
        'an anonymous webhook delivery',
        'POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
          `X-Hub-Signature-256: sha256=${'0'.repeat(64)}\r\nContent-Length: 26214400\r\n\r\n{"zen":"`,
      ],
      ['headers that never end', 'GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n'],
    ] as const) {
      const { text, closed } = await stalled(head)
      t.ok(closed, `${what}: the connection is closed`)
      t.match(text, /^HTTP\/1\.1 408 /, `${what}: 408`)
      t.match(text, /"code":"REQUEST_TIMEOUT"/, what)
    }
  },
)

t.test('request targets the router refuses, or that are not origin-form, get the common shape', async (t) => {
  const app = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port

  await t.test('a malformed percent-encoding: 400 INVALID_URL, with the usual headers', async (t) => {
    const res = await app.inject({ url: '/api/v1/tenants/%E0%A4%A/projects' })
    t.equal(res.statusCode, 400)
    t.same(res.json(), {
      statusCode: 400,
      code: 'INVALID_URL',
      error: 'The URL is not valid: it holds a malformed percent-encoding.',
      message: 'The URL is not valid: it holds a malformed percent-encoding.',
    })
    t.ok(res.headers['x-request-id'], 'a request id')
    t.equal(res.headers['x-content-type-options'], 'nosniff', 'the security headers')
  })

  await t.test('a long path parameter reaches the route: 401 first, then its schema', async (t) => {
    const long = 'a'.repeat(200)
    const anonymous = await app.inject({ method: 'POST', url: `/api/v1/projects/${long}/github` })
    t.equal(anonymous.statusCode, 401, 'anonymous: 401, not 414')
    t.equal(anonymous.json().code, 'NOT_AUTHENTICATED')
    const huge = await app.inject({ url: `/api/v1/projects/${'a'.repeat(2000)}/github` })
    t.equal(huge.statusCode, 414)
    t.same(huge.json(), {
      statusCode: 414,
      code: 'URI_TOO_LONG',
      error: 'A path segment of this URL is too long.',
      message: 'A path segment of this URL is too long.',
    })
  })

  await t.test('requests Node refuses before routing get the common body too', async (t) => {
    const malformed = await rawRequest(port, 'GET x:443 HTTP/1.1')
    t.equal(malformed.status, 400)
    t.same(JSON.parse(malformed.body), {
      statusCode: 400,
      code: 'MALFORMED_REQUEST',
      error: 'The request is not valid HTTP.',
      message: 'The request is not valid HTTP.',
    })
    const huge = await rawRequest(port, `GET /${'a'.repeat(20_000)} HTTP/1.1`)
    t.equal(huge.status, 431)
    t.equal(JSON.parse(huge.body).code, 'HEADERS_TOO_LARGE')
  })

  await t.test('Host: none or several on HTTP/1.1 is 400 INVALID_HOST (RFC 9112 §3.2)', async (t) => {
    const none = await rawRequest(port, 'GET /health/live HTTP/1.1', '')
    t.equal(none.status, 400)
    t.same(JSON.parse(none.body), {
      statusCode: 400,
      code: 'INVALID_HOST',
      error: 'An HTTP/1.1 request must carry a Host header.',
      message: 'An HTTP/1.1 request must carry a Host header.',
    })
    for (const hosts of ['Host: x\r\nHost: y\r\n', 'Host: x\r\nhOsT: x\r\n']) {
      const two = await rawRequest(port, 'GET /health/live HTTP/1.1', hosts)
      t.equal(two.status, 400, JSON.stringify(hosts))
      t.equal(JSON.parse(two.body).message, 'A request must carry one Host header, not several.')
    }
    // Before the 401: a write without a Host is refused for its Host, not its session.
    const write = await rawRequest(port, 'POST /api/v1/tenants HTTP/1.1', '')
    t.equal(JSON.parse(write.body).code, 'INVALID_HOST')
    t.equal((await rawRequest(port, 'GET /health/live HTTP/1.0', '')).status, 200, 'HTTP/1.0 needs none')
    t.equal((await rawRequest(port, 'GET /health/live HTTP/1.1')).status, 200, 'one Host: answered')
  })

  await t.test('CONNECT is 405 with the common body, not a closed connection', async (t) => {
    const res = await rawRequest(port, 'CONNECT example.com:443 HTTP/1.1', 'Host: example.com:443\r\n')
    t.equal(res.status, 405)
    t.same(JSON.parse(res.body), {
      statusCode: 405,
      code: 'METHOD_NOT_ALLOWED',
      error: 'CONNECT is not supported: Portico is not a proxy.',
      message: 'CONNECT is not supported: Portico is not a proxy.',
    })
  })

  await t.test(
    'an Expect other than 100-continue is 417 with the common body, not an empty one',
    async (t) => {
      // An outside review's note: Node's own 417 had no body.
      const res = await rawRequest(port, 'POST /api/v1/tenants HTTP/1.1\r\nExpect: foo\r\nContent-Length: 0')
      t.equal(res.status, 417)
      const message =
        'The Expect header asks for something this server does not do; only 100-continue is supported.'
      t.same(JSON.parse(res.body), { statusCode: 417, code: 'EXPECTATION_FAILED', error: message, message })
      const continued = await rawRequest(port, 'GET /health/live HTTP/1.1\r\nExpect: 100-continue')
      t.equal(continued.status, 100, '100-continue is still met')
      t.match(continued.body, /^HTTP\/1\.1 200 /, 'then answered')
    },
  )

  await t.test('absolute-form targets are routed by their path (RFC 9112 §3.2.2), never a 500', async (t) => {
    for (const method of ['GET', 'POST']) {
      const res = await rawRequest(port, `${method} http://x/api/v1/tenants HTTP/1.1`)
      t.equal(res.status, 401, `${method} http://x/api/v1/tenants`)
      t.equal(JSON.parse(res.body).code, 'NOT_AUTHENTICATED')
    }
    const health = await rawRequest(port, 'GET http://x/health/live HTTP/1.1')
    t.equal(health.status, 200, 'a public route answers as usual')
    // The router matched these from their second character (found by a second review):
    // `GET *` served the landing page, `GET *auth/login` answered 500.
    for (const target of ['*', '*auth/login', '*auth/logout', '*health/live', '*api/v1/tenants']) {
      for (const method of ['GET', 'POST', 'OPTIONS']) {
        const res = await rawRequest(port, `${method} ${target} HTTP/1.1`)
        t.equal(res.status, 400, `${method} ${target}`)
        t.equal(JSON.parse(res.body).code, 'INVALID_URL', `${method} ${target}`)
      }
    }
  })
})

t.test('a field the schema does not take is named', async (t) => {
  const app = await build(t, {}, (app) => {
    app.post(
      '/boom/strict',
      {
        schema: {
          body: { type: 'object', additionalProperties: false, properties: { name: { type: 'string' } } },
        },
      },
      async () => ({ ok: true }),
    )
    app.post(
      '/boom/nested',
      {
        schema: {
          body: {
            type: 'object',
            properties: {
              spec: { type: 'object', additionalProperties: false, properties: { a: { type: 'string' } } },
            },
          },
        },
      },
      async () => ({ ok: true }),
    )
  })
  // The example of a first-time user: "body must NOT have additional properties" named nothing.
  const res = await app.inject({ method: 'POST', url: '/boom/strict', payload: { name: 'x', colour: 'red' } })
  t.equal(res.statusCode, 400)
  t.equal(res.json().code, 'VALIDATION_ERROR')
  t.equal(res.json().message, 'body has a field this route does not take: "colour"')
  // Line separators and bidirectional controls in a name would break or reorder a log line or
  // the frontend's toast: they come back escaped.
  const odd = await app.inject({
    method: 'POST',
    url: '/boom/strict',
    payload: { 'a\u2028b\u202ec\u0085d\u061c': 1 },
  })
  t.equal(odd.json().message, 'body has a field this route does not take: "a\\u2028b\\u202ec\\u0085d\\u061c"')
  // A legacy 40-hex token pasted as a key is not echoed.
  const legacy = `${'f'.repeat(8)}0123456789abcdef0123456789abcdef`
  const hex = await app.inject({ method: 'POST', url: '/boom/strict', payload: { [legacy]: true } })
  t.equal(hex.json().message, 'body has a field this route does not take: "[REDACTED]"')
  t.notMatch(hex.body, legacy)
  // Deeper in a body, the validator reports the unknown key itself: redacted as well.
  const nested = await app.inject({
    method: 'POST',
    url: '/boom/nested',
    payload: { spec: { [`ghp_${'a'.repeat(36)}`]: 1 } },
  })
  t.equal(nested.json().message, 'body.spec has a field this route does not take: "[REDACTED]"')
})

t.test('fields of two kinds of request sent together are named as such', async (t) => {
  const { CreateConnectionBody } = await import('../src/schemas/connections.js')
  const app = await build(t, {}, (app) => {
    app.post('/boom/connect', { schema: { body: CreateConnectionBody } }, async () => ({ ok: true }))
  })
  const cases: [object, string][] = [
    // A review's example: told that the route "does not take" installation_id, which it does.
    [
      { repo_url: 'https://github.com/o/r', pat: 'ghp_x', installation_id: 1 },
      'body cannot have both "repo_url" and "installation_id": they belong to different kinds of request',
    ],
    [
      { installation_id: 1, repository_id: 2, pat: 'ghp_x' },
      'body cannot have both "installation_id" and "pat": they belong to different kinds of request',
    ],
  ]
  for (const [payload, message] of cases) {
    const res = await app.inject({ method: 'POST', url: '/boom/connect', payload })
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.same(res.json(), { statusCode: 400, code: 'VALIDATION_ERROR', error: message, message })
    t.notMatch(res.body, 'ghp_x')
  }
  const one = await app.inject({
    method: 'POST',
    url: '/boom/connect',
    payload: { installation_id: 1, repository_id: 2 },
  })
  t.equal(one.statusCode, 200, 'one kind alone passes')
})

t.test('a body matching no branch of a union is told about the branch it came closest to', async (t) => {
  const { CreateConnectionBody } = await import('../src/schemas/connections.js')
  const app = await build(t, {}, (app) => {
    app.post('/boom/connect', { schema: { body: CreateConnectionBody } }, async () => ({ ok: true }))
  })
  const cases: [unknown, string][] = [
    // A new user's example: an App connection with a string id was told "body.repo_url is required".
    [{ installation_id: 5550001, repository_id: '700002' }, 'body.repository_id must be a whole number'],
    // A new user's example: an App connection without its repository was told to send repo_url.
    [{ installation_id: 5550001 }, 'body.repository_id is required'],
    [{ pat: 'ghp_x' }, 'body.repo_url is required'],
    [{ repo_url: 5, pat: 'ghp_x' }, 'body.repo_url must be a string'],
    [{ repo_url: 'https://github.com/o/r' }, 'body.pat is required'],
    [{}, 'body must have repo_url and pat, or installation_id and repository_id'],
    // Not an object: said so, not what an object would need (a second review).
    [[], 'body must be a JSON object'],
    ['str', 'body must be a JSON object'],
  ]
  for (const [payload, message] of cases) {
    const res = await app.inject({
      method: 'POST',
      url: '/boom/connect',
      payload: JSON.stringify(payload),
      headers: { 'content-type': 'application/json' },
    })
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.equal(res.json().message, message, JSON.stringify(payload))
  }
})

t.test('a body of none of its union’s types names every type', async (t) => {
  const { RefreshBody } = await import('../src/schemas/connections.js')
  const app = await build(t, {}, (app) => {
    app.post('/boom/refresh', { schema: { body: RefreshBody } }, async () => ({ ok: true }))
  })
  const refused = ['"str"', '5', '[]', 'true']
  for (const payload of [...refused, 'null', '{}']) {
    const res = await app.inject({
      method: 'POST',
      url: '/boom/refresh',
      payload,
      headers: { 'content-type': 'application/json' },
    })
    if (!refused.includes(payload)) t.equal(res.statusCode, 200, payload)
    else {
      t.equal(res.statusCode, 400, payload)
      t.equal(res.json().message, 'body must be a JSON object or null', payload)
    }
  }
})

t.test('a value outside a union of literals names the allowed ones', async (t) => {
  const { SetTenantMemberBody } = await import('../src/schemas/tenants.js')
  const app = await build(t, {}, (app) => {
    app.put('/boom/role', { schema: { body: SetTenantMemberBody } }, async () => ({ ok: true }))
  })
  // The example of a first-time user: `{"role":"boss"}` was "body.role must be equal to constant".
  const res = await app.inject({ method: 'PUT', url: '/boom/role', payload: { role: 'boss' } })
  t.equal(res.statusCode, 400)
  t.equal(res.json().code, 'VALIDATION_ERROR')
  t.equal(res.json().message, 'body.role must be one of: owner, admin, member')
  t.equal(
    (await app.inject({ method: 'PUT', url: '/boom/role', payload: { role: 'admin' } })).statusCode,
    200,
  )
})

t.test('a value of another type than a union of literals names the allowed ones, not the type', async (t) => {
  const { Type } = await import('@sinclair/typebox')
  const { SetTenantMemberBody, TenantRoleSchema } = await import('../src/schemas/tenants.js')
  const app = await build(t, {}, (app) => {
    app.put('/boom/role', { schema: { body: SetTenantMemberBody } }, async () => ({ ok: true }))
    app.post(
      '/boom/nested',
      {
        schema: {
          body: Type.Object({
            member: Type.Optional(Type.Object({ role: TenantRoleSchema })),
            roles: Type.Optional(Type.Array(TenantRoleSchema)),
            kind: Type.Optional(Type.Enum({ A: 'a', B: 'b' })),
            color: Type.Optional(Type.String({ enum: ['red', 'green'] })),
            // Keys the caller chooses, and values that are not strings (a review).
            byName: Type.Optional(Type.Record(Type.String(), TenantRoleSchema)),
            shape: Type.Optional(Type.Unsafe({ enum: [{ a: 1 }, 2] })),
            // A union of unions: every branch's values, not only the innermost union's (a review).
            nest: Type.Optional(
              Type.Union([
                Type.Union([Type.Literal('a'), Type.Literal('b')]),
                Type.Union([Type.Literal('c'), Type.Null()]),
              ]),
            ),
          }),
        },
      },
      async () => ({ ok: true }),
    )
  })
  // A first-time user's `{"role":5}` was told "body.role must be a string": true, but not what to send.
  const roles = 'must be one of: owner, admin, member'
  const cases: [string, string, string][] = [
    ['/boom/role', '{"role":5}', `body.role ${roles}`],
    ['/boom/role', '{"role":true}', `body.role ${roles}`],
    ['/boom/role', '{"role":{}}', `body.role ${roles}`],
    ['/boom/role', '{"role":["member"]}', `body.role ${roles}`],
    ['/boom/role', '{"role":null}', `body.role ${roles}`],
    ['/boom/nested', '{"member":{"role":2}}', `body.member.role ${roles}`],
    ['/boom/nested', '{"roles":["admin",false]}', `body.roles.1 ${roles}`],
    ['/boom/nested', '{"kind":1}', 'body.kind must be one of: a, b'],
    // The `enum` keyword: Ajv reports the type alone.
    ['/boom/nested', '{"color":7}', 'body.color must be one of: red, green'],
    // A key of the caller's is a field name: a token in it is not echoed, a "/" or "~" is as sent.
    ['/boom/nested', `{"byName":{"ghp_${'a'.repeat(36)}":5}}`, `body.byName.[REDACTED] ${roles}`],
    ['/boom/nested', '{"byName":{"a/b~c":5}}', `body.byName.a/b~c ${roles}`],
    ['/boom/nested', '{"shape":"x"}', 'body.shape must be one of: {"a":1}, 2'],
    ['/boom/nested', '{"nest":5}', 'body.nest must be one of: a, b, c or null'],
    ['/boom/nested', '{"nest":"z"}', 'body.nest must be one of: a, b, c or null'],
  ]
  for (const [url, payload, message] of cases) {
    const res = await app.inject({
      method: url === '/boom/role' ? 'PUT' : 'POST',
      url,
      payload,
      headers: { 'content-type': 'application/json' },
    })
    t.equal(res.statusCode, 400, payload)
    t.same(res.json(), { statusCode: 400, code: 'VALIDATION_ERROR', error: message, message }, payload)
  }
  // The right type but no allowed value is said the same way.
  const wrongString = await app.inject({ method: 'POST', url: '/boom/nested', payload: { color: 'blue' } })
  t.equal(wrongString.json().message, 'body.color must be one of: red, green')
})

t.test('a query value of another type than a union of literals names the allowed ones', async (t) => {
  const { Type } = await import('@sinclair/typebox')
  const { TenantRoleSchema } = await import('../src/schemas/tenants.js')
  const app = await build(t, {}, (app) => {
    app.get(
      '/boom/query-role',
      { schema: { querystring: Type.Object({ role: Type.Optional(TenantRoleSchema) }) } },
      async (req) => req.query,
    )
  })
  // A repeated parameter is a list, which no string literal is (a single one is coerced to its text).
  for (const url of ['/boom/query-role?role=admin&role=member', '/boom/query-role?role=5']) {
    const res = await app.inject({ url })
    t.equal(res.statusCode, 400, url)
    t.equal(res.json().message, 'querystring.role must be one of: owner, admin, member', url)
  }
  const ok = await app.inject({ url: '/boom/query-role?role=admin' })
  t.same(ok.json(), { role: 'admin' })
})

t.test('a nullable union of literals names null among the allowed values', async (t) => {
  const { Type } = await import('@sinclair/typebox')
  const app = await build(t, {}, (app) => {
    app.post(
      '/boom/mode',
      {
        schema: {
          body: Type.Object({
            mode: Type.Optional(Type.Union([Type.Literal('new'), Type.Literal('edit'), Type.Null()])),
            only: Type.Optional(Type.Union([Type.Literal('pr_open'), Type.Null()])),
            color: Type.Optional(Type.Union([Type.String({ enum: ['red', 'green'] }), Type.Null()])),
            shade: Type.Optional(Type.Union([Type.String(), Type.Null()], { enum: ['dark', 'light', null] })),
          }),
        },
      },
      async () => ({ ok: true }),
    )
  })
  const postMode = (payload: string) =>
    app.inject({
      method: 'POST',
      url: '/boom/mode',
      payload,
      headers: { 'content-type': 'application/json' },
    })
  for (const [payload, message] of [
    ['{"mode":5}', 'body.mode must be one of: new, edit or null'],
    ['{"mode":[]}', 'body.mode must be one of: new, edit or null'],
    // A string of none of them was told "one of: new, edit", as if null were not allowed.
    ['{"mode":"boss"}', 'body.mode must be one of: new, edit or null'],
    ['{"only":false}', 'body.only must be pr_open or null'],
    ['{"color":5}', 'body.color must be one of: red, green or null'],
    ['{"color":"blue"}', 'body.color must be one of: red, green or null'],
    ['{"shade":5}', 'body.shade must be one of: dark, light or null'],
    // An `enum` with null in it was told "one of: dark, light, " (null joined as nothing).
    ['{"shade":"pale"}', 'body.shade must be one of: dark, light or null'],
  ] as const) {
    const res = await postMode(payload)
    t.equal(res.statusCode, 400, payload)
    t.equal(res.json().message, message, payload)
  }
  for (const payload of [
    '{"mode":null}',
    '{"mode":"edit"}',
    '{"only":null}',
    '{"color":null}',
    '{"shade":"dark"}',
  ]) {
    const res = await postMode(payload)
    t.equal(res.statusCode, 200, payload)
  }
})

t.test('the members routes name the allowed roles for a role of another type', async (t) => {
  const { startTestSimulator } = await import('@portico/testing')
  const { PROJECT_ROLES } = await import('@portico/db')
  const { createTenantWithProject, signIn, writeHeaders } = await import('./helper.js')
  const { sim, env } = await startTestSimulator(t)
  const app = await build(t, env)
  const { cookie } = await signIn(app, sim, 'octocat')
  const { tenant, project } = await createTenantWithProject(app, cookie)
  const tenantRes = await app.inject({
    method: 'PUT',
    url: `/api/v1/tenants/${tenant.id}/members/hubot`,
    headers: writeHeaders(app, cookie),
    payload: { role: 5 },
  })
  t.equal(tenantRes.statusCode, 400)
  t.equal(tenantRes.json().message, 'body.role must be one of: owner, admin, member')
  const projectRes = await app.inject({
    method: 'PUT',
    url: `/api/v1/projects/${project.id}/members/hubot`,
    headers: writeHeaders(app, cookie),
    payload: { role: ['admin'] },
  })
  t.equal(projectRes.statusCode, 400)
  t.equal(projectRes.json().message, `body.role must be one of: ${PROJECT_ROLES.join(', ')}`)
})

t.test('a JSON body is validated as sent; the query string is still coerced from text', async (t) => {
  const { CreateTenantBody, SetTenantMemberBody } = await import('../src/schemas/tenants.js')
  const { DeploymentQuery } = await import('../src/schemas/pods.js')
  const seen: unknown[] = []
  const app = await build(t, {}, (app) => {
    app.put('/boom/role', { schema: { body: SetTenantMemberBody } }, async (req) => {
      seen.push(req.body)
      return { ok: true }
    })
    app.post('/boom/tenant', { schema: { body: CreateTenantBody } }, async (req) => {
      seen.push(req.body)
      return { ok: true }
    })
    app.get('/boom/query', { schema: { querystring: DeploymentQuery } }, async (req) => req.query)
  })
  // The reviewer's examples: an array where a string belongs, and a number stored as its text.
  for (const [url, method, payload] of [
    ['/boom/role', 'PUT', { role: ['member'] }],
    ['/boom/tenant', 'POST', { slug: 'acme', name: 5 }],
    ['/boom/tenant', 'POST', { slug: ['acme'], name: 'Acme' }],
    ['/boom/tenant', 'POST', { slug: 'acme', name: true }],
  ] as const) {
    const res = await app.inject({ method, url, payload })
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.equal(res.json().code, 'VALIDATION_ERROR', JSON.stringify(payload))
  }
  t.same(seen, [], 'no handler saw a coerced body')
  t.equal(
    (await app.inject({ method: 'PUT', url: '/boom/role', payload: { role: 'member' } })).statusCode,
    200,
  )

  const query = await app.inject({ url: '/boom/query?limit=5&customer=acme' })
  t.equal(query.statusCode, 200)
  t.same(query.json(), { limit: 5, customer: 'acme' }, 'query text coerced to the schema types')
  t.equal((await app.inject({ url: '/boom/query?limit=five' })).statusCode, 400)
})

t.test('schema rules are told in words, not in the validator words', async (t) => {
  const { CreateTenantBody } = await import('../src/schemas/tenants.js')
  const { DeploymentQuery } = await import('../src/schemas/pods.js')
  const app = await build(t, {}, (app) => {
    app.post('/boom/tenant', { schema: { body: CreateTenantBody } }, async () => ({ ok: true }))
    app.get('/boom/query', { schema: { querystring: DeploymentQuery } }, async (req) => req.query)
  })
  // A new user's examples: "must be string", "must NOT have more than 200 characters", "must be object".
  const cases: [string, string, unknown, string][] = [
    ['POST', '/boom/tenant', { slug: 'acme', name: 5 }, 'body.name must be a string'],
    [
      'POST',
      '/boom/tenant',
      { slug: 'acme', name: 'x'.repeat(5000) },
      'body.name must be at most 200 characters long',
    ],
    ['POST', '/boom/tenant', ['acme'], 'body must be a JSON object'],
    ['POST', '/boom/tenant', 'null', 'body must be a JSON object'],
    ['GET', '/boom/query?limit=abc', undefined, 'querystring.limit must be a whole number'],
  ]
  for (const [method, url, payload, message] of cases) {
    const res = await app.inject({
      method: method as 'GET' | 'POST',
      url,
      ...(payload === undefined
        ? {}
        : { payload: typeof payload === 'string' ? payload : JSON.stringify(payload) }),
      headers: payload === undefined ? {} : { 'content-type': 'application/json' },
    })
    t.equal(res.statusCode, 400, message)
    t.same(res.json(), { statusCode: 400, code: 'VALIDATION_ERROR', error: message, message })
  }
  const limit = await app.inject({ url: '/boom/query?limit=100000' })
  t.match(limit.json().message, /^querystring\.limit must be at most \d+$/)
})

t.test(
  'JSON bodies: each refusal has its own code and sentence; nothing is changed or poisoned',
  async (t) => {
    const { MAX_JSON_DEPTH } = await import('../src/plugins/app/json-body.js')
    const seen: unknown[] = []
    const app = await build(t, {}, (app) => {
      app.post(
        '/boom/json',
        {
          schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } },
        },
        async (req) => {
          seen.push(req.body)
          return { ok: true }
        },
      )
    })
    const send = (payload: string | Buffer, contentType = 'application/json') =>
      app.inject({ method: 'POST', url: '/boom/json', payload, headers: { 'content-type': contentType } })
    const refused: [string, string | Buffer, string, number, string, string][] = [
      [
        'malformed',
        '{"name":',
        'application/json',
        400,
        'INVALID_JSON',
        'The request body is not valid JSON.',
      ],
      // No body at all, as `fetch` sends with a JSON content-type: the schema decides.
      ['empty', '', 'application/json', 400, 'VALIDATION_ERROR', 'body must be a JSON object'],
      [
        `nested ${MAX_JSON_DEPTH + 1} deep`,
        `{"name":"x","z":${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}}`,
        'application/json',
        400,
        'JSON_TOO_DEEP',
        `The request body nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep.`,
      ],
      // The reviewer's example: a surrogate pair took the reviver path, which recursed and failed.
      [
        'nested 6,000 deep with a surrogate pair',
        `{"name":"\\ud83d\\ude00","z":${'['.repeat(6000)}${']'.repeat(6000)}}`,
        'application/json',
        400,
        'JSON_TOO_DEEP',
        `The request body nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep.`,
      ],
      [
        'not UTF-8 (a Latin-1 é)',
        Buffer.from([0x7b, 0x22, 0x6e, 0x61, 0x6d, 0x65, 0x22, 0x3a, 0x22, 0xe9, 0x22, 0x7d]),
        'application/json',
        400,
        'INVALID_JSON',
        'The request body is not valid UTF-8.',
      ],
      [
        'a lone surrogate in a value',
        '{"name":"a\\ud800b"}',
        'application/json',
        400,
        'INVALID_JSON',
        'The request body holds an escaped lone surrogate (such as "\\ud800"), which is not text.',
      ],
      [
        'a lone surrogate in a key',
        '{"name":"x","\\udc00":1}',
        'application/json',
        400,
        'INVALID_JSON',
        'The request body holds an escaped lone surrogate (such as "\\ud800"), which is not text.',
      ],
      ...[
        '{"__proto__":{"admin":true},"name":"x"}',
        '{"name":"x","deep":[{"__proto__":{"admin":true}}]}',
        '{"\\u005f_proto__":{"admin":true},"name":"x"}',
        '{"name":"x","constructor":{"prototype":{"admin":true}}}',
      ].map((body): [string, string, string, number, string, string] => [
        body,
        body,
        'application/json',
        400,
        'UNSAFE_JSON_KEY',
        'The request body uses "__proto__" or "constructor.prototype" as a key, which is refused.',
      ]),
      [
        'charset=utf-16',
        '{"name":"x"}',
        'application/json; charset=utf-16',
        415,
        'UNSUPPORTED_MEDIA_TYPE',
        'Request bodies must be UTF-8 JSON; charset=utf-16 is not supported.',
      ],
      ...[
        'application/json; charset=utf-8; charset=utf-16',
        'application/json; charset=utf-16;CHARSET=utf-8',
      ].map((type): [string, string, string, number, string, string] => [
        `two charsets: ${type}`,
        '{"name":"x"}',
        type,
        415,
        'UNSUPPORTED_MEDIA_TYPE',
        'The content-type names more than one charset.',
      ]),
      ...['text/plain', 'application/x-www-form-urlencoded', 'application/vnd.github+json'].map(
        (type): [string, string, string, number, string, string] => [
          type,
          'name=x',
          type,
          415,
          'UNSUPPORTED_MEDIA_TYPE',
          "The request body's content-type is not one this route takes: send JSON as application/json.",
        ],
      ),
    ]
    for (const [name, payload, contentType, statusCode, code, message] of refused) {
      const res = await send(payload, contentType)
      t.equal(res.statusCode, statusCode, name)
      t.equal(res.json().code, code, name)
      if (message) t.same(res.json(), { statusCode, code, error: message, message }, name)
    }
    t.same(seen, [], 'no handler saw a refused body')
    t.equal(({} as Record<string, unknown>).admin, undefined, 'no prototype was touched')

    const accepted: [string, string, string, unknown][] = [
      ['a surrogate pair', '{"name":"\\ud83d\\ude00"}', 'application/json', { name: '😀' }],
      ['charset=UTF-8', '{"name":"x"}', 'application/json; charset=UTF-8', { name: 'x' }],
      ['a quoted charset', '{"name":"x"}', 'application/json;charset="utf-8"', { name: 'x' }],
      ['a byte order mark', '\ufeff{"name":"x"}', 'application/json', { name: 'x' }],
      [
        `nested ${MAX_JSON_DEPTH} deep, brackets in strings not counted`,
        `{"name":"${'['.repeat(200)}","z":${'['.repeat(MAX_JSON_DEPTH - 1)}${']'.repeat(MAX_JSON_DEPTH - 1)}}`,
        'application/json',
        {
          name: '['.repeat(200),
          z: Array.from({ length: MAX_JSON_DEPTH - 2 }).reduce<unknown[]>((inner) => [inner], []),
        },
      ],
      [
        '"constructor" as data',
        '{"name":"x","constructor":"c"}',
        'application/json',
        { name: 'x', constructor: 'c' },
      ],
    ]
    for (const [name, payload, contentType] of accepted) {
      const res = await send(payload, contentType)
      t.equal(res.statusCode, 200, `${name}: ${res.body}`)
    }
    t.same(
      seen,
      accepted.map(([, , , body]) => body),
      'accepted bodies arrive as sent',
    )
  },
)

t.test('a transaction Postgres ends for a deadlock is 409 CONCURRENT_CHANGE, not a 500', async (t) => {
  const { sql } = await import('kysely')
  const app = await build(t, {}, (app) => {
    // Two transactions taking two advisory locks in opposite orders: a real 40P01 for one of them.
    app.post('/boom/deadlock', async () => {
      const held: (() => void)[] = []
      const bothHold = new Promise<void>((resolve) => {
        let n = 0
        const one = () => {
          n += 1
          if (n === 2) resolve()
        }
        held.push(one, one)
      })
      const lockBoth = (first: number, second: number, hold: () => void) =>
        app.db.transaction().execute(async (trx) => {
          await sql`select pg_advisory_xact_lock(872341, ${first})`.execute(trx)
          hold()
          await bothHold
          await sql`select pg_advisory_xact_lock(872341, ${second})`.execute(trx)
        })
      const results = await Promise.allSettled([
        lockBoth(1, 2, held[0] as () => void),
        lockBoth(2, 1, held[1] as () => void),
      ])
      const failed = results.find((r) => r.status === 'rejected')
      if (failed) throw failed.reason
      return { ok: true }
    })
  })
  const res = await app.inject({ method: 'POST', url: '/boom/deadlock' })
  t.equal(res.statusCode, 409)
  t.same(res.json(), {
    statusCode: 409,
    code: 'CONCURRENT_CHANGE',
    error: 'Another change to the same data was made at the same moment, so nothing was changed. Try again.',
    message:
      'Another change to the same data was made at the same moment, so nothing was changed. Try again.',
  })
})
