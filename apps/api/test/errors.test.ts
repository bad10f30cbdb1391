import t from 'tap'
import { build } from './helper.js'

t.test('unknown routes answer 404 NOT_FOUND in the common error shape', async (t) => {
  const app = await build(t)
  const res = await app.inject({ url: '/nope?x=1' })
  t.equal(res.statusCode, 404)
  t.same(res.json(), {
    statusCode: 404,
    code: 'NOT_FOUND',
    error: 'Not Found',
    message: 'Route GET /nope not found',
  })
})

t.test('errors are mapped by their own statusCode and code; 5xx bodies stay generic', async (t) => {
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
    error: 'Conflict',
    message: 'It exists already.',
  })
  const internal = await app.inject({ url: '/boom/internal' })
  t.equal(internal.statusCode, 500)
  t.equal(internal.json().code, 'INTERNAL_ERROR')
  t.notMatch(internal.body, /ECONNREFUSED|hunter2|5432/)
  t.ok(internal.json().requestId, 'carries the request id for the logs')
  const invalid = await app.inject({ method: 'POST', url: '/boom/validate', payload: {} })
  t.equal(invalid.statusCode, 400)
  t.equal(invalid.json().code, 'VALIDATION_ERROR')
  t.match(invalid.json().message, 'body.name is required')
  const badJson = await app.inject({
    method: 'POST',
    url: '/boom/validate',
    payload: '{"name":',
    headers: { 'content-type': 'application/json' },
  })
  t.equal(badJson.statusCode, 400)
  t.equal(badJson.json().code, 'BAD_REQUEST')
})
