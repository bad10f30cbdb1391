import { startTestSimulator } from '@portico/testing'
import t from 'tap'
import { build, createTenantWithProject, signIn, writeHeaders } from './helper.js'

const { sim, env } = await startTestSimulator(t)

t.test(
  'a NUL character in any name, login, path or query value is 400 VALIDATION_ERROR, never a 500',
  async (t) => {
    const app = await build(t, env)
    const { cookie } = await signIn(app, sim, 'octocat')
    const { tenant, project } = await createTenantWithProject(app, cookie)
    const cases: { what: string; method: 'GET' | 'POST' | 'PUT'; url: string; payload?: unknown }[] = [
      {
        what: 'tenant name',
        method: 'POST',
        url: '/api/v1/tenants',
        payload: { slug: 'nul-t', name: 'Acme\u0000Corp' },
      },
      {
        what: 'project name',
        method: 'POST',
        url: `/api/v1/tenants/${tenant.id}/projects`,
        payload: { name: 'App\u0000' },
      },
      {
        what: 'tenant member login',
        method: 'PUT',
        url: `/api/v1/tenants/${tenant.id}/members/hu%00bot`,
        payload: { role: 'member' },
      },
      {
        what: 'project member login',
        method: 'PUT',
        url: `/api/v1/projects/${project.id}/members/hu%00bot`,
        payload: { role: 'viewer' },
      },
      { what: 'tenant id', method: 'GET', url: '/api/v1/tenants/%00/projects' },
      {
        what: 'repository URL',
        method: 'POST',
        url: `/api/v1/projects/${project.id}/github`,
        payload: { repo_url: 'https://github.com/acme/\u0000app', pat: 'ghp_x' },
      },
      { what: 'pod path', method: 'GET', url: '/api/pod/al%00pha/dev' },
      { what: 'deployments query', method: 'GET', url: '/api/deployments?customer=al%00pha' },
      { what: 'returnTo query', method: 'GET', url: '/auth/login?returnTo=%2Fa%00b' },
      { what: 'OAuth state', method: 'GET', url: '/auth/callback?code=x&state=a%00b' },
    ]
    for (const c of cases) {
      const res = await app.inject({
        method: c.method,
        url: c.url,
        headers: writeHeaders(app, cookie),
        ...(c.payload ? { payload: c.payload } : {}),
      })
      t.equal(res.statusCode, 400, `${c.what}: ${res.body}`)
      t.equal(res.json().code, 'VALIDATION_ERROR', c.what)
      t.type(res.json().message, 'string')
      t.notMatch(res.json().message, /pattern|\^/, `${c.what}: the rule in words, not a regular expression`)
    }
    const tenants = await app.db.selectFrom('tenants').select('name').execute()
    t.equal(tenants.length, 1, 'nothing was written')
  },
)

t.test('a blank tenant or project name is refused', async (t) => {
  // A new user's example: a tenant named "   " was accepted.
  const app = await build(t, env)
  const { cookie } = await signIn(app, sim, 'octocat')
  const { tenant } = await createTenantWithProject(app, cookie)
  const rule = 'body.name must not be blank or contain a NUL character'
  for (const [url, payload] of [
    ['/api/v1/tenants', { slug: 'blank-t', name: '   ' }],
    [`/api/v1/tenants/${tenant.id}/projects`, { name: '\t \n' }],
  ] as const) {
    const res = await app.inject({ method: 'POST', url, headers: writeHeaders(app, cookie), payload })
    t.equal(res.statusCode, 400, url)
    t.equal(res.json().message, rule, url)
  }
  const named = await app.inject({
    method: 'POST',
    url: '/api/v1/tenants',
    headers: writeHeaders(app, cookie),
    payload: { slug: 'spaced-t', name: '  Acme  ' },
  })
  t.equal(named.statusCode, 201, 'a name with spaces around it is a name')
})

t.test('a slug that breaks the rule is refused with the rule in words', async (t) => {
  const app = await build(t, env)
  const { cookie } = await signIn(app, sim, 'octocat')
  const { tenant } = await createTenantWithProject(app, cookie)
  const rule = 'must be 2-63 lower-case letters, digits or dashes, starting with a letter'
  for (const [url, payload] of [
    ['/api/v1/tenants', { slug: 'Acme Corp', name: 'Acme' }],
    [`/api/v1/tenants/${tenant.id}/projects`, { slug: '9lives', name: 'App' }],
  ] as const) {
    const res = await app.inject({ method: 'POST', url, headers: writeHeaders(app, cookie), payload })
    t.equal(res.statusCode, 400, url)
    t.same(res.json(), {
      statusCode: 400,
      code: 'VALIDATION_ERROR',
      error: `body.slug ${rule}`,
      message: `body.slug ${rule}`,
    })
  }
})

t.test('text from the URL echoed in a message cannot break or reorder the line', async (t) => {
  // An outside review's example: a login of "x<U+2028>y<U+0085>z<U+202E>w" came back raw in the
  // message and in the log's reason.
  const app = await build(t, env)
  const { cookie } = await signIn(app, sim, 'octocat')
  const { project } = await createTenantWithProject(app, cookie)
  const res = await app.inject({
    method: 'DELETE',
    url: `/api/v1/projects/${project.id}/members/x%E2%80%A8y%C2%85z%E2%80%AEw`,
    headers: writeHeaders(app, cookie),
  })
  t.equal(res.statusCode, 404, res.body)
  t.match(res.json().message, 'x\\u2028y\\u0085z\\u202ew')
  t.notMatch(res.body, /[\u0085\u2028\u202e]/)
  t.equal(res.json().error, res.json().message)
})
