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
    }
    const tenants = await app.db.selectFrom('tenants').select('name').execute()
    t.equal(tenants.length, 1, 'nothing was written')
  },
)
