import t from 'tap'
import { sim, TOKENS } from './fixtures/sim.js'

const CLIENT = 'Iv1.portico-dev'
const SECRET = 'portico-dev-secret'
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`

t.test('DELETE /applications/{client_id}/token revokes an OAuth token', async (t) => {
  const s = await sim(t)
  const token = 'gho_revokeme000000000000000000000000001'
  s.addToken('hubot', token, { scopes: ['repo'], kind: 'oauth' })
  const revoke = (body: unknown, auth = basic(CLIENT, SECRET), client = CLIENT) =>
    fetch(`${s.apiUrl}/applications/${client}/token`, {
      method: 'DELETE',
      headers: {
        authorization: auth,
        'content-type': 'application/json',
        accept: 'application/vnd.github+json',
      },
      body: JSON.stringify(body),
    })
  const user = () => fetch(`${s.apiUrl}/user`, { headers: { authorization: `token ${token}` } })
  t.equal((await user()).status, 200, 'the token works before')

  for (const [what, auth, client] of [
    ['wrong secret', basic(CLIENT, 'nope'), CLIENT],
    ['another client id in the path', basic(CLIENT, SECRET), 'Iv1.other'],
    ['a user token instead of app credentials', `token ${TOKENS.hubot}`, CLIENT],
  ] as const) {
    const res = await revoke({ access_token: token }, auth, client)
    t.equal(res.status, 404, what)
    t.match(await res.json(), { message: 'Not Found' })
  }
  t.equal((await user()).status, 200, 'refused revocations changed nothing')

  const missing = await revoke({})
  t.equal(missing.status, 422)

  const ok = await revoke({ access_token: token })
  t.equal(ok.status, 204)
  t.equal((await user()).status, 401, 'the token no longer works')
  t.equal((await revoke({ access_token: token })).status, 404, 'a revoked token is not found again')
  t.equal(s.ledger.count({ route: 'DELETE /applications/{client_id}/token' }) >= 1, true, 'in the ledger')
})
