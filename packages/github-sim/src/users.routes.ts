import type { FastifyRequest } from 'fastify'
import { paginate, requireUser } from './access.js'
import type { ApiRouter } from './api.js'
import { ApiError, notFound, type SimContext } from './context.js'
import { orgFull, orgMembership, orgSimple, privateUser, publicUser, simpleUser } from './views.js'

type P = Record<string, string>
const params = (req: FastifyRequest) => req.params as P
const ORG_SCOPES = 'admin:org, read:org, repo, user, write:org'
const MEMBERSHIP_DOCS =
  'https://docs.github.com/rest/orgs/members#get-an-organization-membership-for-the-authenticated-user'

/** `/user`, `/users/{username}`, `/rate_limit` and organization membership routes. */
export function registerUserRoutes(api: ApiRouter, ctx: SimContext): void {
  const { world } = ctx

  api.get('/user', async (req) => privateUser(world, requireUser(ctx, req), ctx.urls))

  api.get('/users/{username}', async (req) => {
    const login = params(req).username ?? ''
    const user = world.user(login)
    if (user) return publicUser(world, user, ctx.urls)
    const org = world.org(login)
    if (org)
      return {
        ...simpleUser(org, ctx.urls),
        name: org.name,
        company: null,
        blog: '',
        location: null,
        email: null,
        hireable: null,
        bio: org.description,
        public_repos: 0,
        public_gists: 0,
        followers: 0,
        following: 0,
        created_at: org.createdAt,
        updated_at: org.createdAt,
      }
    throw notFound('https://docs.github.com/rest/users/users#get-a-user')
  })

  api.get(
    '/rate_limit',
    async (req) => {
      const key = req.sim.bucketKey ?? ''
      const anonymous = !req.sim.login
      const b = ctx.buckets.get(key) ?? {
        limit: anonymous ? ctx.anonymousLimit : ctx.rateDefaults.limit,
        remaining: anonymous ? ctx.anonymousLimit : (ctx.rateDefaults.remaining ?? ctx.rateDefaults.limit),
        reset: Math.floor((ctx.rateDefaults.resetAt?.getTime() ?? Date.now() + 3_600_000) / 1000),
      }
      const core = {
        limit: b.limit,
        remaining: b.remaining,
        used: b.limit - b.remaining,
        reset: b.reset,
        resource: 'core',
      }
      const other = (limit: number) => ({ limit, remaining: limit, used: 0, reset: b.reset })
      return {
        resources: {
          core,
          search: other(30),
          graphql: other(anonymous ? 0 : 5000),
          integration_manifest: other(5000),
          code_search: other(10),
        },
        rate: core,
      }
    },
    { counted: false },
  )

  api.get(
    '/user/orgs',
    async (req, reply) => {
      const user = requireUser(ctx, req)
      const scopes = req.sim.token?.scopes ?? []
      // Without an org-reading scope only public memberships are listed; none are public here.
      if (!['read:org', 'write:org', 'admin:org', 'user'].some((s) => scopes.includes(s))) return []
      const orgs = [...world.orgs.values()].filter(
        (o) => o.members.get(user.login.toLowerCase())?.state === 'active',
      )
      return paginate(req, reply, orgs).map((o) => orgSimple(o, ctx.urls))
    },
    { scopes: 'admin:org, read:org, user, write:org' },
  )

  api.get('/orgs/{org}', async (req) => {
    const org = world.org(params(req).org ?? '')
    if (!org) throw notFound('https://docs.github.com/rest/orgs/orgs#get-an-organization')
    return orgFull(world, org, ctx.urls)
  })

  api.get(
    '/user/memberships/orgs/{org}',
    async (req) => {
      const user = requireUser(ctx, req)
      const scopes = req.sim.token?.scopes ?? []
      if (!['read:org', 'write:org', 'admin:org', 'repo', 'user'].some((s) => scopes.includes(s))) {
        throw new ApiError(
          403,
          'You need at least read:org scope or user scope to list your organization memberships.',
          {
            documentation_url: MEMBERSHIP_DOCS,
          },
        )
      }
      const org = world.org(params(req).org ?? '')
      const m = org?.members.get(user.login.toLowerCase())
      if (!org || !m) throw notFound(MEMBERSHIP_DOCS)
      return orgMembership(org, user, m, ctx.urls)
    },
    { scopes: ORG_SCOPES },
  )

  api.get(
    '/orgs/{org}/memberships/{username}',
    async (req) => {
      const me = requireUser(ctx, req)
      const org = world.org(params(req).org ?? '')
      if (!org)
        throw notFound('https://docs.github.com/rest/orgs/members#get-organization-membership-for-a-user')
      const mine = org.members.get(me.login.toLowerCase())
      const target = world.user(params(req).username ?? '')
      const theirs = target ? org.members.get(target.login.toLowerCase()) : undefined
      const self = target?.login.toLowerCase() === me.login.toLowerCase()
      // Members see active memberships; only admins (or the user themself) see pending ones.
      const visible =
        theirs &&
        (self ||
          (mine?.role === 'admin' && mine.state === 'active') ||
          (mine?.state === 'active' && theirs.state === 'active'))
      if (!target || !theirs || !visible) {
        throw notFound('https://docs.github.com/rest/orgs/members#get-organization-membership-for-a-user')
      }
      return orgMembership(org, target, theirs, ctx.urls)
    },
    { scopes: ORG_SCOPES },
  )

  api.get('/orgs/{org}/members/{username}', async (req, reply) => {
    const org = world.org(params(req).org ?? '')
    if (!org)
      throw notFound('https://docs.github.com/rest/orgs/members#check-organization-membership-for-a-user')
    const target = world.user(params(req).username ?? '')
    const requester = req.sim.login ? org.members.get(req.sim.login.toLowerCase()) : undefined
    if (requester?.state !== 'active') {
      // Non-members are sent to the public members check, as on GitHub (no public members are simulated).
      return reply
        .code(302)
        .header('location', `${ctx.urls.api}/orgs/${org.login}/public_members/${params(req).username}`)
        .send('')
    }
    const m = target ? org.members.get(target.login.toLowerCase()) : undefined
    if (m?.state === 'active') return reply.code(204).send()
    return reply.code(404).send({
      message: 'User does not exist or is not a member of the organization',
      documentation_url: 'https://docs.github.com/rest/orgs/members#check-organization-membership-for-a-user',
      status: '404',
    })
  })

  api.get('/orgs/{org}/public_members/{username}', async (req, reply) => {
    if (!world.org(params(req).org ?? '')) throw notFound()
    return reply
      .code(404)
      .send({ message: 'Not Found', documentation_url: 'https://docs.github.com/rest', status: '404' })
  })
}
