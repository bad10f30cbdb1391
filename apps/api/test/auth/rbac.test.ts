import { changeTenantRole } from '@portico/db'
import { defaultSeed } from '@portico/github-sim'
import { startTestSimulator } from '@portico/testing'
import type { FastifyInstance } from 'fastify'
import { sql, type Transaction } from 'kysely'
import t from 'tap'
import {
  addProjectMember,
  addTenantMember,
  build,
  createProject,
  createTenant,
  createTenantWithProject,
  signIn,
  writeHeaders,
} from '../helper.js'

/** Waits until at least `n` of this database's sessions wait for a lock (requests held by a test's lock). */
async function lockWaiters(app: FastifyInstance, n = 1): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from pg_stat_activity
      where wait_event_type = 'Lock' and datname = current_database()`.execute(app.db)
    if ((rows[0]?.n ?? 0) >= n) return
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`fewer than ${n} requests waiting for a lock`)
}

const EXTRA_USERS = ['u-powner', 'u-padmin', 'u-qa', 'u-viewer', 'u-tadmin', 'u-other', 'u-extra']
const seed = {
  ...defaultSeed,
  users: [...defaultSeed.users, ...EXTRA_USERS.map((login, i) => ({ login, id: 800001 + i, name: login }))],
}

const PERSONAS = [
  'anonymous',
  'viewer',
  'qa-automation',
  'admin',
  'owner',
  'tenant owner',
  'tenant admin',
  'other tenant',
] as const
type Persona = (typeof PERSONAS)[number]
const LOGIN: Record<Exclude<Persona, 'anonymous'>, string> = {
  viewer: 'u-viewer',
  'qa-automation': 'u-qa',
  admin: 'u-padmin',
  owner: 'u-powner',
  'tenant owner': 'octocat',
  'tenant admin': 'u-tadmin',
  'other tenant': 'u-other',
}

/** Expected [status, code?] per persona; `members` stands for the five project-side personas. */
type Expect = [number, string?]
interface Row {
  name: string
  request(ctx: Ctx): { method: 'GET' | 'POST' | 'PUT' | 'DELETE'; url: string; payload?: unknown }
  before?(ctx: Ctx): Promise<void>
  expect: Record<Persona, Expect>
}
interface Ctx {
  app: FastifyInstance
  tenantId: string
  projectId: string
  ownerCookie: string
  n: number
}

const E401: Expect = [401, 'NOT_AUTHENTICATED']
const E403: Expect = [403, 'INSUFFICIENT_ROLE']
const T404: Expect = [404, 'TENANT_NOT_FOUND']
const P404: Expect = [404, 'PROJECT_NOT_FOUND']

const all = (status: Expect, overrides: Partial<Record<Persona, Expect>>): Record<Persona, Expect> =>
  Object.fromEntries(PERSONAS.map((p) => [p, overrides[p] ?? status])) as Record<Persona, Expect>

const ROWS: Row[] = [
  {
    name: 'GET /api/v1/tenants',
    request: () => ({ method: 'GET', url: '/api/v1/tenants' }),
    expect: all([200], { anonymous: E401 }),
  },
  {
    name: 'POST /api/v1/tenants',
    request: (c) => ({
      method: 'POST',
      url: '/api/v1/tenants',
      payload: { slug: `rbac-${c.n}`, name: 'New' },
    }),
    expect: all([201], { anonymous: E401 }),
  },
  {
    name: 'PUT /api/v1/tenants/:tenantId/members/:login',
    request: (c) => ({
      method: 'PUT',
      url: `/api/v1/tenants/${c.tenantId}/members/u-extra`,
      payload: { role: 'member' },
    }),
    expect: all(E403, {
      anonymous: E401,
      'tenant owner': [200],
      'tenant admin': [200],
      'other tenant': T404,
    }),
  },
  {
    name: 'POST /api/v1/tenants/:tenantId/projects',
    request: (c) => ({
      method: 'POST',
      url: `/api/v1/tenants/${c.tenantId}/projects`,
      payload: { name: `Project ${c.n}` },
    }),
    expect: all(E403, {
      anonymous: E401,
      'tenant owner': [201],
      'tenant admin': [201],
      'other tenant': T404,
    }),
  },
  {
    name: 'GET /api/v1/tenants/:tenantId/projects',
    request: (c) => ({ method: 'GET', url: `/api/v1/tenants/${c.tenantId}/projects` }),
    expect: all([200], { anonymous: E401, 'other tenant': T404 }),
  },
  {
    name: 'GET /api/v1/projects/:projectId',
    request: (c) => ({ method: 'GET', url: `/api/v1/projects/${c.projectId}` }),
    expect: all([200], { anonymous: E401, 'other tenant': P404 }),
  },
  {
    name: 'GET /api/v1/projects/:projectId/members',
    request: (c) => ({ method: 'GET', url: `/api/v1/projects/${c.projectId}/members` }),
    expect: all([200], { anonymous: E401, 'other tenant': P404 }),
  },
  {
    name: 'PUT /api/v1/projects/:projectId/members/:login',
    request: (c) => ({
      method: 'PUT',
      url: `/api/v1/projects/${c.projectId}/members/u-extra`,
      payload: { role: 'developer' },
    }),
    expect: all([200], { anonymous: E401, viewer: E403, 'qa-automation': E403, 'other tenant': P404 }),
  },
  {
    name: 'DELETE /api/v1/projects/:projectId/members/:login',
    before: (c) => addProjectMember(c.app, c.ownerCookie, c.projectId, 'u-extra', 'viewer'),
    request: (c) => ({ method: 'DELETE', url: `/api/v1/projects/${c.projectId}/members/u-extra` }),
    expect: all([204], { anonymous: E401, viewer: E403, 'qa-automation': E403, 'other tenant': P404 }),
  },
  {
    // A route guarded like the pods/connections routes guard theirs.
    name: "requireProjectRole('owner', 'admin', 'qa-automation')",
    request: (c) => ({ method: 'POST', url: `/test/projects/${c.projectId}/qa-run` }),
    expect: all([200], { anonymous: E401, viewer: E403, 'other tenant': P404 }),
  },
]

t.test('RBAC matrix: every tenant/project route × every persona', async (t) => {
  const { sim, env } = await startTestSimulator(t, { seed })
  const app = await build(t, env, (server) => {
    server.post(
      '/test/projects/:projectId/qa-run',
      { preHandler: server.requireProjectRole('owner', 'admin', 'qa-automation') },
      async (request) => ({ role: request.project?.role, tenant_id: request.project?.tenant_id }),
    )
  })
  const cookies = {} as Record<Persona, string | undefined>
  for (const persona of PERSONAS) {
    cookies[persona] = persona === 'anonymous' ? undefined : (await signIn(app, sim, LOGIN[persona])).cookie
  }
  await signIn(app, sim, 'u-extra')
  const ownerCookie = cookies['tenant owner']!
  const { tenant, project } = await createTenantWithProject(app, ownerCookie)
  await addTenantMember(app, ownerCookie, tenant.id, 'u-tadmin', 'admin')
  for (const [persona, role] of [
    ['owner', 'owner'],
    ['admin', 'admin'],
    ['qa-automation', 'qa-automation'],
    ['viewer', 'viewer'],
  ] as const) {
    await addProjectMember(app, ownerCookie, project.id, LOGIN[persona], role)
  }
  await createTenant(app, cookies['other tenant']!)

  let n = 0
  for (const row of ROWS) {
    await t.test(row.name, async (t) => {
      for (const persona of PERSONAS) {
        const ctx: Ctx = { app, tenantId: tenant.id, projectId: project.id, ownerCookie, n: n++ }
        await row.before?.(ctx)
        const req = row.request(ctx)
        const cookie = cookies[persona]
        const res = await app.inject({ ...req, headers: cookie ? writeHeaders(app, cookie) : {} } as never)
        const [status, code] = row.expect[persona]
        t.equal(res.statusCode, status, `${persona} → ${status} ${res.statusCode !== status ? res.body : ''}`)
        if (code) t.equal(res.json().code, code, `${persona} → ${code}`)
      }
    })
  }

  await t.test('roles as seen by each persona', async (t) => {
    for (const [persona, role] of [
      ['viewer', 'viewer'],
      ['qa-automation', 'qa-automation'],
      ['admin', 'admin'],
      ['owner', 'owner'],
      ['tenant owner', 'owner'],
      ['tenant admin', 'admin'],
    ] as const) {
      const res = await app.inject({
        url: `/api/v1/projects/${project.id}`,
        headers: { cookie: cookies[persona]! },
      })
      t.match(res.json(), { id: project.id, tenant_id: tenant.id, role }, persona)
    }
    const qa = await app.inject({
      method: 'POST',
      url: `/test/projects/${project.id}/qa-run`,
      headers: writeHeaders(app, cookies.viewer!),
    })
    t.equal(qa.json().message, 'This action requires one of: owner, admin, qa-automation.')
    const tenants = await app.inject({
      url: '/api/v1/tenants',
      headers: { cookie: cookies['other tenant']! },
    })
    t.notOk(
      tenants.json().tenants.some((x: { id: string }) => x.id === tenant.id),
      "another tenant's user does not see the tenant",
    )
    const listed = await app.inject({
      url: `/api/v1/tenants/${tenant.id}/projects`,
      headers: { cookie: cookies.viewer! },
    })
    t.same(
      listed.json().projects.map((p: { id: string }) => p.id),
      [project.id],
      'a project member lists only their projects',
    )
  })
})

t.test('tenant and project management: unhappy paths', async (t) => {
  const { sim, env } = await startTestSimulator(t)
  const app = await build(t, env)
  const owner = (await signIn(app, sim, 'octocat')).cookie
  const hubot = (await signIn(app, sim, 'hubot')).cookie
  const tenant = await createTenant(app, owner, { slug: 'acme-corp' })
  const project = await createProject(app, owner, tenant.id, { name: 'My App!', slug: undefined as never })
  const send = (cookie: string, method: 'POST' | 'PUT' | 'DELETE' | 'GET', url: string, payload?: unknown) =>
    app.inject({ method, url, headers: writeHeaders(app, cookie), ...(payload ? { payload } : {}) } as never)
  const expectCode = async (
    t: Tap,
    res: Promise<{ statusCode: number; json(): { code: string } }>,
    status: number,
    code: string,
  ) => {
    const r = await res
    t.equal(r.statusCode, status, code)
    t.equal(r.json().code, code)
  }
  type Tap = typeof t

  t.match(project, { slug: /^p-/ }, 'the helper passes a slug; here it is derived')
  const derived = await send(owner, 'POST', `/api/v1/tenants/${tenant.id}/projects`, { name: 'My App!' })
  t.equal(derived.statusCode, 201)
  t.equal(derived.json().slug, 'my-app', 'slug derived from the name')
  // A new user's example: accents became dashes ("u-ni-code-name").
  const accented = await send(owner, 'POST', `/api/v1/tenants/${tenant.id}/projects`, {
    name: 'Ünïcode Näme — Café',
  })
  t.equal(accented.json().slug, 'unicode-name-cafe', 'accents are dropped, not dashed')
  await expectCode(
    t,
    send(owner, 'POST', `/api/v1/tenants/${tenant.id}/projects`, { name: 'My app' }),
    409,
    'PROJECT_SLUG_TAKEN',
  )
  await expectCode(
    t,
    send(owner, 'POST', '/api/v1/tenants', { slug: 'ACME-corp', name: 'x' }),
    400,
    'VALIDATION_ERROR',
  )
  await expectCode(
    t,
    send(owner, 'POST', '/api/v1/tenants', { slug: 'acme-corp', name: 'x' }),
    409,
    'TENANT_SLUG_TAKEN',
  )
  await expectCode(t, send(owner, 'POST', '/api/v1/tenants', { slug: 'ok-slug' }), 400, 'VALIDATION_ERROR')
  // A misspelt field is named, not reported as the missing one it was meant to be (Ajv checks
  // `required` first), on every route with a closed body schema.
  for (const [url, payload] of [
    ['/api/v1/tenants', { slug: 'ok-slug', nmae: 'Typo' }],
    [`/api/v1/tenants/${tenant.id}/projects`, { nmae: 'Typo' }],
  ] as const) {
    const res = await send(owner, 'POST', url, payload)
    t.equal(res.statusCode, 400, url)
    t.equal(res.json().message, 'body has a field this route does not take: "nmae"', url)
  }
  // A review's example: "" got Ajv's "must NOT have fewer than 1 characters", "   " the rule in words.
  for (const name of ['', '   ']) {
    for (const [url, payload] of [
      ['/api/v1/tenants', { slug: 'ok-slug', name }],
      [`/api/v1/tenants/${tenant.id}/projects`, { name }],
    ] as const) {
      const res = await send(owner, 'POST', url, payload)
      t.equal(res.statusCode, 400, `${url} ${JSON.stringify(name)}`)
      t.equal(res.json().message, 'body.name must not be blank or contain a NUL character')
    }
  }
  await expectCode(
    t,
    send(owner, 'PUT', `/api/v1/tenants/${tenant.id}/members/nobody-here`, { role: 'member' }),
    404,
    'USER_NOT_FOUND',
  )
  await expectCode(
    t,
    send(owner, 'PUT', `/api/v1/projects/${project.id}/members/nobody-here`, { role: 'viewer' }),
    404,
    'USER_NOT_FOUND',
  )
  await expectCode(
    t,
    send(owner, 'PUT', `/api/v1/projects/${project.id}/members/hubot`, { role: 'root' }),
    400,
    'VALIDATION_ERROR',
  )
  await expectCode(
    t,
    send(owner, 'DELETE', `/api/v1/projects/${project.id}/members/hubot`),
    404,
    'MEMBER_NOT_FOUND',
  )
  await expectCode(
    t,
    send(owner, 'PUT', `/api/v1/tenants/${tenant.id}/members/octocat`, { role: 'admin' }),
    409,
    'LAST_OWNER',
  )
  await expectCode(t, send(owner, 'GET', '/api/v1/projects/not-a-uuid'), 404, 'PROJECT_NOT_FOUND')
  await expectCode(
    t,
    send(owner, 'GET', '/api/v1/projects/00000000-0000-4000-8000-000000000000'),
    404,
    'PROJECT_NOT_FOUND',
  )
  await expectCode(t, send(owner, 'GET', '/api/v1/tenants/not-a-uuid/projects'), 404, 'TENANT_NOT_FOUND')

  // Admins manage members but cannot make or unmake owners.
  await addTenantMember(app, owner, tenant.id, 'hubot', 'admin')
  await expectCode(
    t,
    send(hubot, 'PUT', `/api/v1/tenants/${tenant.id}/members/hubot`, { role: 'owner' }),
    403,
    'INSUFFICIENT_ROLE',
  )
  await expectCode(
    t,
    send(hubot, 'PUT', `/api/v1/tenants/${tenant.id}/members/octocat`, { role: 'member' }),
    403,
    'INSUFFICIENT_ROLE',
  )
  await expectCode(
    t,
    send(hubot, 'PUT', `/api/v1/projects/${project.id}/members/hubot`, { role: 'owner' }),
    403,
    'INSUFFICIENT_ROLE',
  )
  const asViewer = await send(hubot, 'PUT', `/api/v1/projects/${project.id}/members/hubot`, {
    role: 'viewer',
  })
  t.equal(asViewer.statusCode, 200, 'a tenant admin stays admin of the project whatever their project role')
  t.equal((await send(hubot, 'GET', `/api/v1/projects/${project.id}`)).json().role, 'admin')
  // A review's example: a tenant owner's own project row is an owner's, whatever role it holds.
  t.equal(
    (await send(owner, 'PUT', `/api/v1/projects/${project.id}/members/octocat`, { role: 'viewer' }))
      .statusCode,
    200,
  )
  for (const [method, payload] of [
    ['DELETE', undefined],
    ['PUT', { role: 'viewer' }],
  ] as const) {
    await expectCode(
      t,
      send(hubot, method, `/api/v1/projects/${project.id}/members/octocat`, payload),
      403,
      'INSUFFICIENT_ROLE',
    )
  }
  const members = await send(owner, 'GET', `/api/v1/projects/${project.id}/members`)
  t.same(
    members.json().members.map((m: { login: string; role: string }) => [m.login, m.role]),
    [
      ['hubot', 'viewer'],
      ['octocat', 'viewer'],
    ],
  )
  t.equal(
    (await send(owner, 'DELETE', `/api/v1/projects/${project.id}/members/octocat`)).statusCode,
    204,
    'an owner may',
  )
  // Promote a second owner; then the first may step down.
  await addTenantMember(app, owner, tenant.id, 'hubot', 'owner')
  t.equal(
    (await send(owner, 'PUT', `/api/v1/tenants/${tenant.id}/members/octocat`, { role: 'admin' })).statusCode,
    200,
  )
})

t.test('two owners demoting each other at once: one stays owner', async (t) => {
  const { sim, env } = await startTestSimulator(t)
  const app = await build(t, env)
  const octocat = (await signIn(app, sim, 'octocat')).cookie
  const hubot = (await signIn(app, sim, 'hubot')).cookie
  const tenant = await createTenant(app, octocat)
  const demote = (cookie: string, login: string) =>
    app.inject({
      method: 'PUT',
      url: `/api/v1/tenants/${tenant.id}/members/${login}`,
      headers: writeHeaders(app, cookie),
      payload: { role: 'member' },
    })
  const owners = async () =>
    (
      await app.db
        .selectFrom('tenant_members')
        .select('user_id')
        .where('tenant_id', '=', tenant.id)
        .where('role', '=', 'owner')
        .execute()
    ).length
  for (let round = 0; round < 5; round++) {
    // Both owners again, then each demotes the other in the same instant.
    await addTenantMember(app, octocat, tenant.id, 'hubot', 'owner').catch(() =>
      addTenantMember(app, hubot, tenant.id, 'octocat', 'owner'),
    )
    t.equal(await owners(), 2, `round ${round}: two owners`)
    const results = await Promise.all([demote(octocat, 'hubot'), demote(hubot, 'octocat')])
    const won = results.filter((r) => r.statusCode === 200)
    const lost = results.filter((r) => r.statusCode !== 200)
    t.equal(won.length, 1, `round ${round}: one demotion wins`)
    // The loser is refused by the last-owner rule, or (if the winner committed before its role
    // check) because it is no longer an owner: never both demoted.
    t.match(lost[0]?.json().code, /^(LAST_OWNER|INSUFFICIENT_ROLE)$/)
    t.equal(await owners(), 1, `round ${round}: the tenant keeps exactly one owner`)
  }
})

t.test('changeTenantRole: concurrent demotions of the last two owners, straight on Postgres', async (t) => {
  const { sim, env } = await startTestSimulator(t)
  const app = await build(t, env)
  const octocat = (await signIn(app, sim, 'octocat')).cookie
  await signIn(app, sim, 'hubot')
  const tenant = await createTenant(app, octocat)
  const ids = await app.db.selectFrom('users').select(['id', 'login']).execute()
  const id = (login: string) => ids.find((u) => u.login === login)!.id
  for (let round = 0; round < 10; round++) {
    await changeTenantRole(app.db, tenant.id, id('octocat'), 'owner')
    await changeTenantRole(app.db, tenant.id, id('hubot'), 'owner')
    const outcomes = await Promise.all([
      changeTenantRole(app.db, tenant.id, id('octocat'), 'admin'),
      changeTenantRole(app.db, tenant.id, id('hubot'), 'member'),
    ])
    t.same([...outcomes].sort(), ['changed', 'last-owner'], `round ${round}`)
  }
})

t.test('an admin demoting a member while an owner promotes them: the check sees the promotion', async (t) => {
  // A review's example: the admin's check read the member before the owner's promotion
  // committed, so both answered 200 and the new owner ended up a viewer.
  const { sim, env } = await startTestSimulator(t)
  const app = await build(t, env)
  const octocat = (await signIn(app, sim, 'octocat')).cookie
  const hubot = (await signIn(app, sim, 'hubot')).cookie
  await signIn(app, sim, 'monalisa')
  const { tenant, project } = await createTenantWithProject(app, octocat)
  await addTenantMember(app, octocat, tenant.id, 'hubot', 'admin')
  await addProjectMember(app, octocat, project.id, 'monalisa', 'viewer')
  const setRole = (cookie: string, role: string) =>
    app.inject({
      method: 'PUT',
      url: `/api/v1/projects/${project.id}/members/monalisa`,
      headers: writeHeaders(app, cookie),
      payload: { role },
    })
  let promoted: Promise<{ statusCode: number }> | undefined
  let demoted: Promise<{ statusCode: number }> | undefined
  // Hold monalisa's row so that the owner's promotion stops at its write, then let both go.
  await app.db.transaction().execute(async (trx) => {
    await trx
      .selectFrom('project_members')
      .select('role')
      .where('project_id', '=', project.id)
      .forUpdate()
      .execute()
    promoted = setRole(octocat, 'owner')
    await lockWaiters(app, 1)
    demoted = setRole(hubot, 'viewer')
    await lockWaiters(app, 2)
  })
  t.equal((await promoted)?.statusCode, 200, 'the owner promotes')
  t.equal((await demoted)?.statusCode, 403, 'the admin meets an owner')
  const row = await app.db
    .selectFrom('project_members as pm')
    .innerJoin('users as u', 'u.id', 'pm.user_id')
    .select('pm.role')
    .where('pm.project_id', '=', project.id)
    .where('u.login', '=', 'monalisa')
    .executeTakeFirst()
  t.equal(row?.role, 'owner')
})

t.test(
  'a membership change waiting for the project is checked again: a caller demoted or a project gone meanwhile',
  async (t) => {
    // A review's examples: an admin demoted to viewer while waiting still granted admin (200), and a
    // change to a project deleted meanwhile answered 200.
    const { sim, env } = await startTestSimulator(t)
    const app = await build(t, env)
    const octocat = (await signIn(app, sim, 'octocat')).cookie
    const hubot = (await signIn(app, sim, 'hubot')).cookie
    await signIn(app, sim, 'monalisa')
    const { project } = await createTenantWithProject(app, octocat)
    await addProjectMember(app, octocat, project.id, 'hubot', 'admin')
    await addProjectMember(app, octocat, project.id, 'monalisa', 'viewer')
    const setRole = (cookie: string, login: string, role: string) =>
      app.inject({
        method: 'PUT',
        url: `/api/v1/projects/${project.id}/members/${login}`,
        headers: writeHeaders(app, cookie),
        payload: { role },
      })
    const holdingProject = async (
      meanwhile: (trx: Transaction<never>) => Promise<unknown>,
      send: () => Promise<{ statusCode: number }>,
    ) => {
      let answer: Promise<{ statusCode: number }> | undefined
      await app.db.transaction().execute(async (trx) => {
        await trx.selectFrom('projects').select('id').where('id', '=', project.id).forUpdate().execute()
        answer = send()
        await lockWaiters(app)
        await meanwhile(trx as never)
      })
      return (await answer)?.statusCode
    }
    const hubotId = (
      await app.db.selectFrom('users').select('id').where('login', '=', 'hubot').executeTakeFirstOrThrow()
    ).id
    const demoted = await holdingProject(
      (trx) =>
        (trx as unknown as typeof app.db)
          .updateTable('project_members')
          .set({ role: 'viewer' })
          .where('project_id', '=', project.id)
          .where('user_id', '=', hubotId)
          .execute(),
      () => setRole(hubot, 'monalisa', 'admin'),
    )
    t.equal(demoted, 403, 'the caller is a viewer by the time the change runs')
    const gone = await holdingProject(
      (trx) =>
        (trx as unknown as typeof app.db).deleteFrom('projects').where('id', '=', project.id).execute(),
      () => setRole(octocat, 'monalisa', 'admin'),
    )
    t.equal(gone, 404, 'the project went meanwhile')
  },
)

t.test('a tenant membership change waiting for the tenant sees the roles as they are by then', async (t) => {
  // A review's example: an admin demoted to member while their request waited still removed an
  // owner (200). The same for a target promoted to owner meanwhile.
  const { sim, env } = await startTestSimulator(t)
  const app = await build(t, env)
  const octocat = (await signIn(app, sim, 'octocat')).cookie
  const hubot = (await signIn(app, sim, 'hubot')).cookie
  await signIn(app, sim, 'monalisa')
  const tenant = await createTenant(app, octocat)
  await addTenantMember(app, octocat, tenant.id, 'hubot', 'admin')
  await addTenantMember(app, octocat, tenant.id, 'monalisa', 'member')
  const idOf = async (login: string) =>
    (await app.db.selectFrom('users').select('id').where('login', '=', login).executeTakeFirstOrThrow()).id
  const setRole = (login: string, role: string) => (trx: Transaction<never>) =>
    idOf(login).then((id) =>
      (trx as unknown as typeof app.db)
        .updateTable('tenant_members')
        .set({ role: role as never })
        .where('tenant_id', '=', tenant.id)
        .where('user_id', '=', id)
        .execute(),
    )
  const holdingTenant = async (meanwhile: (trx: Transaction<never>) => Promise<unknown>) => {
    let answer: Promise<{ statusCode: number; json(): { code: string } }> | undefined
    await app.db.transaction().execute(async (trx) => {
      await trx.selectFrom('tenants').select('id').where('id', '=', tenant.id).forUpdate().execute()
      answer = app.inject({
        method: 'PUT',
        url: `/api/v1/tenants/${tenant.id}/members/monalisa`,
        headers: writeHeaders(app, hubot),
        payload: { role: 'admin' },
      })
      await lockWaiters(app)
      await meanwhile(trx as never)
    })
    const res = await answer!
    return [res.statusCode, res.json().code]
  }
  const role = async (login: string) =>
    (
      await app.db
        .selectFrom('tenant_members')
        .select('role')
        .where('tenant_id', '=', tenant.id)
        .where('user_id', '=', await idOf(login))
        .executeTakeFirst()
    )?.role
  t.same(
    await holdingTenant(setRole('hubot', 'member')),
    [403, 'INSUFFICIENT_ROLE'],
    'the caller is a member by then',
  )
  t.equal(await role('monalisa'), 'member', 'nothing changed')
  await setRole('hubot', 'admin')(app.db as never)
  t.same(
    await holdingTenant(setRole('monalisa', 'owner')),
    [403, 'INSUFFICIENT_ROLE'],
    'the target is an owner by then',
  )
  t.equal(await role('monalisa'), 'owner', 'the owner stays')
  await setRole('monalisa', 'member')(app.db as never)
  t.same(
    await holdingTenant(async () => undefined),
    [200, undefined],
    'nothing changed meanwhile: the change is made',
  )
  t.equal(await role('monalisa'), 'admin')
})

t.test('adding a new user to a tenant and to one of its projects at once: both go through', async (t) => {
  // A review's example: the project route wrote the tenant membership before the tenant's lock,
  // the tenant route took them the other way round, and Postgres ended one for a deadlock (409).
  const { sim, env } = await startTestSimulator(t)
  const app = await build(t, env)
  const octocat = (await signIn(app, sim, 'octocat')).cookie
  await signIn(app, sim, 'monalisa')
  const { tenant, project } = await createTenantWithProject(app, octocat)
  const octocatId = (
    await app.db.selectFrom('users').select('id').where('login', '=', 'octocat').executeTakeFirstOrThrow()
  ).id
  const put = (url: string, role: string) =>
    app.inject({ method: 'PUT', url, headers: writeHeaders(app, octocat), payload: { role } })
  let toTenant: ReturnType<typeof put> | undefined
  let toProject: ReturnType<typeof put> | undefined
  // Holding the owner's row stops the tenant change while it holds the tenant: the widest window.
  await app.db.transaction().execute(async (trx) => {
    await trx
      .selectFrom('tenant_members')
      .select('role')
      .where('tenant_id', '=', tenant.id)
      .where('user_id', '=', octocatId)
      .forUpdate()
      .execute()
    toTenant = put(`/api/v1/tenants/${tenant.id}/members/monalisa`, 'member')
    await lockWaiters(app, 1)
    toProject = put(`/api/v1/projects/${project.id}/members/monalisa`, 'viewer')
    await lockWaiters(app, 2)
  })
  const [a, b] = await Promise.all([toTenant, toProject])
  t.equal(a?.statusCode, 200, `tenant: ${a?.body}`)
  t.equal(b?.statusCode, 200, `project: ${b?.body}`)
})
