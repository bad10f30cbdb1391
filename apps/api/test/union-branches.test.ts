import { Type } from '@sinclair/typebox'
import t from 'tap'
import { CreateConnectionBody, RefreshBody } from '../src/schemas/connections.js'
import { unionBranches } from '../src/schemas/union-branches.js'

const shape = (schema: Parameters<typeof unionBranches>[0]) =>
  unionBranches(schema).map((b) => ({ type: b.schema.type, fields: [...b.fields] }))

t.test('a union gives its branches in schema order, each with its fields', async (t) => {
  // The order is Ajv's: validation-message reads a branch's index from `#/anyOf/i/…`.
  t.same(shape(CreateConnectionBody), [
    { type: 'object', fields: ['repo_url', 'pat'] },
    { type: 'object', fields: ['installation_id', 'repository_id'] },
  ])
  t.equal(unionBranches(CreateConnectionBody)[1]?.schema, CreateConnectionBody.anyOf[1])
})

t.test('a null branch is kept in place, with no field', async (t) => {
  t.same(shape(RefreshBody), [
    { type: 'object', fields: ['pat'] },
    { type: 'null', fields: [] },
  ])
})

t.test('a schema that is not a union is its own single branch', async (t) => {
  const body = Type.Object({ name: Type.String() })
  t.same(shape(body), [{ type: 'object', fields: ['name'] }])
  t.same(shape(Type.String()), [{ type: 'string', fields: [] }])
})
