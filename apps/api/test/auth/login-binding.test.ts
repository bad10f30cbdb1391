import { defaultSeed } from '@portico/github-sim'
import { startTestSimulator, testConfig } from '@portico/testing'
import Fastify from 'fastify'
import t from 'tap'
import app from '../../src/app.js'
import { serverOptions } from '../../src/server-options.js'
import { addTenantMember, createTenantWithProject, signIn, writeHeaders } from '../helper.js'

// Two GitHubs: on the second, the login `hubot` belongs to another account (renamed away and
// re-registered by someone else), with another numeric id.
const real = await startTestSimulator(t)
const impostorSeed = {
  ...defaultSeed,
  users: defaultSeed.users.map((u) => (u.login === 'hubot' ? { ...u, id: 31337 } : u)),
}
const reRegistered = await startTestSimulator(t, { seed: impostorSeed })

t.test('a member added by login stays bound to that GitHub id', async (t) => {
  const config = await testConfig(t, real.env)
  const before = Fastify({ ...serverOptions(config, false), pluginTimeout: 120_000 })
  await before.register(app, { config })
  const afterConfig = Object.freeze({
    ...config,
    GITHUB_URL: reRegistered.env.GITHUB_URL as string,
    GITHUB_API_URL: reRegistered.env.GITHUB_API_URL as string,
  })
  const after = Fastify({ ...serverOptions(afterConfig, false), pluginTimeout: 120_000 })
  await after.register(app, { config: afterConfig })
  t.teardown(() => Promise.all([before.close(), after.close()]))

  const owner = (await signIn(before, real.sim, 'octocat')).cookie
  const hubot = (await signIn(before, real.sim, 'hubot')).cookie
  const { tenant, project } = await createTenantWithProject(before, owner)
  await addTenantMember(before, owner, tenant.id, 'hubot', 'admin')
  const tenantsOf = async (server: typeof before, cookie: string) =>
    (await server.inject({ url: '/api/v1/tenants', headers: { cookie } })).json().tenants as { id: string }[]
  t.same(
    (await tenantsOf(before, hubot)).map((x) => x.id),
    [tenant.id],
    'the real hubot is a member',
  )

  // The other account signs in with the same login.
  const impostor = (await signIn(after, reRegistered.sim, 'hubot')).cookie
  t.same(await tenantsOf(after, impostor), [], 'a later different id with the same login inherits nothing')
  const project404 = await after.inject({
    url: `/api/v1/projects/${project.id}`,
    headers: { cookie: impostor },
  })
  t.equal(project404.statusCode, 404)
  t.same(
    (await tenantsOf(before, hubot)).map((x) => x.id),
    [tenant.id],
    'the real hubot keeps the membership (bound to id 480938)',
  )
  const rows = await before.db
    .selectFrom('users')
    .select(['github_id', 'login_released_at'])
    .where('login', '=', 'hubot')
    .orderBy('github_id')
    .execute()
  t.equal(rows.length, 2)
  t.match(rows, [
    { github_id: 31337, login_released_at: null },
    { github_id: 480938, login_released_at: Date },
  ])
  // A role change by login now names the current holder, a new member: it does not touch the
  // original's membership.
  const res = await before.inject({
    method: 'PUT',
    url: `/api/v1/tenants/${tenant.id}/members/hubot`,
    headers: writeHeaders(before, owner),
    payload: { role: 'member' },
  })
  t.equal(res.statusCode, 200)
  t.same(
    (await tenantsOf(before, hubot)).map((x) => (x as { role?: string }).role),
    ['admin'],
  )
})
