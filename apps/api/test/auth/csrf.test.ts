import { startTestSimulator } from '@portico/testing'
import t from 'tap'
import { addProjectMember, build, createTenantWithProject, signIn } from '../helper.js'

t.test('cookie-authenticated writes from a foreign origin are refused', async (t) => {
  const { sim, env } = await startTestSimulator(t)
  const app = await build(t, { ...env, ALLOWED_ORIGINS: 'https://app.portico.example' })
  const { cookie } = await signIn(app, sim, 'octocat')
  await signIn(app, sim, 'hubot')
  const { tenant, project } = await createTenantWithProject(app, cookie)
  await addProjectMember(app, cookie, project.id, 'hubot', 'viewer')

  const routes = [
    { method: 'POST', url: '/api/v1/tenants', payload: { slug: 'csrf-tenant', name: 'CSRF' } },
    { method: 'PUT', url: `/api/v1/tenants/${tenant.id}/members/hubot`, payload: { role: 'admin' } },
    { method: 'POST', url: `/api/v1/tenants/${tenant.id}/projects`, payload: { name: 'csrf project' } },
    { method: 'PUT', url: `/api/v1/projects/${project.id}/members/hubot`, payload: { role: 'admin' } },
    { method: 'DELETE', url: `/api/v1/projects/${project.id}/members/hubot` },
    { method: 'POST', url: '/auth/logout' },
  ] as const

  const foreign: Record<string, string>[] = [
    { origin: 'https://evil.example' },
    { origin: 'http://localhost:3001' },
    { origin: 'null' },
    { referer: 'https://evil.example/page' },
    { referer: 'not a url' },
  ]
  for (const route of routes) {
    await t.test(`${route.method} ${route.url}`, async (t) => {
      for (const headers of foreign) {
        const res = await app.inject({ ...route, headers: { cookie, ...headers } } as never)
        t.equal(res.statusCode, 403, JSON.stringify(headers))
        t.equal(res.json().code, 'CSRF_ORIGIN_MISMATCH')
        // A new user's example: the sentence says which origin to use.
        t.ok(
          res
            .json()
            .message.endsWith(`(use ${new URL(app.config.PUBLIC_URL).origin}, this site's PUBLIC_URL).`),
        )
      }
    })
  }

  await t.test('nothing changed', async (t) => {
    t.equal(
      (await app.inject({ url: '/api/auth/user', headers: { cookie } })).statusCode,
      200,
      'still signed in',
    )
    const tenants = await app.inject({ url: '/api/v1/tenants', headers: { cookie } })
    t.equal(tenants.json().tenants.length, 1)
    const projects = await app.inject({ url: `/api/v1/tenants/${tenant.id}/projects`, headers: { cookie } })
    t.equal(projects.json().projects.length, 1)
    const members = await app.inject({ url: `/api/v1/projects/${project.id}/members`, headers: { cookie } })
    t.same(
      members.json().members.map((m: { login: string; role: string }) => [m.login, m.role]),
      [['hubot', 'viewer']],
    )
  })

  await t.test('allowed origins and header-less clients pass', async (t) => {
    const ok = (headers: Record<string, string>, slug: string) =>
      app.inject({
        method: 'POST',
        url: '/api/v1/tenants',
        headers: { cookie, ...headers },
        payload: { slug, name: slug },
      })
    t.equal(
      (await ok({ origin: 'http://localhost:3000' }, 'from-public-url')).statusCode,
      201,
      'PUBLIC_URL origin',
    )
    t.equal(
      (await ok({ origin: 'https://app.portico.example' }, 'from-allowed')).statusCode,
      201,
      'ALLOWED_ORIGINS',
    )
    t.equal(
      (await ok({ referer: 'http://localhost:3000/some/page' }, 'from-referer')).statusCode,
      201,
      'Referer',
    )
    t.equal((await ok({}, 'no-origin')).statusCode, 201, 'no Origin nor Referer: not a browser')
  })

  await t.test('without the session cookie there is no ambient authority to protect', async (t) => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/tenants',
      headers: { origin: 'https://evil.example' },
      payload: { slug: 'anon', name: 'anon' },
    })
    t.equal(res.statusCode, 401)
    t.equal(res.json().code, 'NOT_AUTHENTICATED')
    const read = await app.inject({
      url: '/api/v1/tenants',
      headers: { cookie, origin: 'https://evil.example' },
    })
    t.equal(read.statusCode, 200, 'reads are not refused')
  })
})
