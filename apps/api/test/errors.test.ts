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
  t.equal(badJson.json().code, 'BAD_REQUEST')
  t.equal(badJson.json().error, badJson.json().message)
  t.notOk(['Bad Request', 'Not Found', 'Conflict'].includes(badJson.json().error), 'never the reason phrase')
})
