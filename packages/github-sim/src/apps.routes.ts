import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { bodyOf, effectivePermission, paginate } from './access.js'
import type { ApiRouter } from './api.js'
import { accountJson, installationJson, integration } from './apps.views.js'
import { ApiError, notFound, type SimContext, validationFailed } from './context.js'
import type { AppPermissions, AppRecord, InstallationRecord } from './github-apps.js'
import { unverifiedIssuer, verifyAppJwt } from './jwt.js'
import { repository } from './views.js'

type P = Record<string, string>
const params = (req: FastifyRequest) => req.params as P
const APPS_DOCS = 'https://docs.github.com/rest/apps/apps'
const INSTALLATIONS_DOCS = 'https://docs.github.com/rest/apps/installations'
const JWT_DOCS = 'https://docs.github.com/rest'

/** Routes a GitHub App calls as itself, with a JWT (any other credential gets 401). */
const JWT_ROUTES = new Set([
  'GET /app',
  'GET /app/installations',
  'GET /app/installations/{installation_id}',
  'DELETE /app/installations/{installation_id}',
  'POST /app/installations/{installation_id}/access_tokens',
  'GET /repos/{owner}/{repo}/installation',
  'GET /orgs/{org}/installation',
  'GET /users/{username}/installation',
  'GET /app/hook/deliveries',
  'GET /app/hook/deliveries/{delivery_id}',
  'POST /app/hook/deliveries/{delivery_id}/attempts',
])

const jwtApps = new WeakMap<FastifyRequest, AppRecord>()

/**
 * Authenticates `Authorization: Bearer <JWT>` as a GitHub App: the issuer (App id or client id)
 * names the App whose public key must verify the token (see jwt.ts for the claim rules). A valid
 * JWT on a route that needs an installation or user token gets 403, as GitHub answers an App.
 */
export function authenticateAppJwt(ctx: SimContext, req: FastifyRequest, token: string): AppRecord {
  const iss = unverifiedIssuer(token)
  const app = iss ? ctx.apps.byIssuer(iss) : undefined
  if (!app) throw new ApiError(401, 'A JSON web token could not be decoded', { documentation_url: JWT_DOCS })
  verifyAppJwt(token, app.publicKey)
  if (!JWT_ROUTES.has(req.sim.route))
    throw new ApiError(403, 'Resource not accessible by integration', { documentation_url: JWT_DOCS })
  jwtApps.set(req, app)
  return app
}

/** The App behind the request's JWT, or GitHub's 401 for any other credential. */
export function requireAppJwt(req: FastifyRequest): AppRecord {
  const app = jwtApps.get(req)
  if (!app) throw new ApiError(401, 'A JSON web token could not be decoded', { documentation_url: JWT_DOCS })
  return app
}

const LEVELS = new Set(['read', 'write', 'admin'])

/** GitHub Apps: App (JWT) routes, installation-token routes, user-token routes and the install page. */
export function registerAppRoutes(api: ApiRouter, app: FastifyInstance, ctx: SimContext): void {
  const { world } = ctx
  const apps = ctx.apps

  const ownInstallation = (req: FastifyRequest): { ghApp: AppRecord; inst: InstallationRecord } => {
    const ghApp = requireAppJwt(req)
    const inst = apps.installations.get(Number(params(req).installation_id))
    if (!inst || inst.appId !== ghApp.id)
      throw notFound(`${APPS_DOCS}#get-an-installation-for-the-authenticated-app`)
    return { ghApp, inst }
  }

  api.get('/app', async (req) => {
    const ghApp = requireAppJwt(req)
    return integration(world, ghApp, ctx.urls, apps.installationsOf(ghApp.id).length)
  })

  api.get('/app/installations', async (req, reply) => {
    const ghApp = requireAppJwt(req)
    const list = apps.installationsOf(ghApp.id).sort((a, b) => a.id - b.id)
    return paginate(req, reply, list).map((i) => installationJson(world, ghApp, i, ctx.urls))
  })

  api.get('/app/installations/{installation_id}', async (req) => {
    const { ghApp, inst } = ownInstallation(req)
    return installationJson(world, ghApp, inst, ctx.urls)
  })

  api.delete('/app/installations/{installation_id}', async (req, reply) => {
    const { inst } = ownInstallation(req)
    removeInstallation(ctx, inst.id, world.user(ctx.world.defaultLogin ?? '')?.login ?? null)
    return reply.code(204).send()
  })

  api.post('/app/installations/{installation_id}/access_tokens', async (req, reply) => {
    const { inst } = ownInstallation(req)
    const doc = `${APPS_DOCS}#create-an-installation-access-token-for-an-app`
    if (inst.suspendedAt)
      throw new ApiError(403, 'This installation has been suspended', { documentation_url: doc })
    const body = bodyOf(req)
    const notAccessible = () =>
      validationFailed(
        'There is at least one repository that does not exist or is not accessible to the parent installation.',
        doc,
      )
    let repositoryIds: number[] | null = null
    if (body.repositories !== undefined || body.repository_ids !== undefined) {
      const names = body.repositories ?? []
      const ids = body.repository_ids ?? []
      if (!Array.isArray(names) || !names.every((n) => typeof n === 'string'))
        throw validationFailed(
          "Invalid request.\n\nFor 'properties/repositories', " +
            JSON.stringify(names) +
            ' is not an array of strings.',
          doc,
        )
      if (!Array.isArray(ids) || !ids.every((n) => Number.isInteger(n)))
        throw validationFailed(
          "Invalid request.\n\nFor 'properties/repository_ids', " +
            JSON.stringify(ids) +
            ' is not an array of integers.',
          doc,
        )
      const wanted = new Set<number>()
      for (const name of names as string[]) {
        const repo = world.repo(inst.account, name)
        if (!repo || !apps.covers(inst, repo)) throw notAccessible()
        wanted.add(repo.id)
      }
      for (const id of ids as number[]) {
        const repo = [...world.repos.values()].find((r) => r.id === id)
        if (!repo || !apps.covers(inst, repo)) throw notAccessible()
        wanted.add(repo.id)
      }
      if (wanted.size > 500) throw validationFailed('Too many repositories requested (500 at most).', doc)
      if (wanted.size) repositoryIds = [...wanted].sort((a, b) => a - b)
    }
    let permissions: AppPermissions = { ...inst.permissions }
    if (body.permissions !== undefined) {
      const p = body.permissions
      if (!p || typeof p !== 'object' || Array.isArray(p))
        throw validationFailed('The permissions requested are not granted to this installation.', doc)
      const requested = p as Record<string, unknown>
      if (!Object.values(requested).every((v) => typeof v === 'string' && LEVELS.has(v)))
        throw validationFailed('The permissions requested are not granted to this installation.', doc)
      const wanted = requested as AppPermissions
      if (!withinPermissions(wanted, inst.permissions))
        throw validationFailed('The permissions requested are not granted to this installation.', doc)
      // metadata: read comes with every installation token.
      permissions = { metadata: 'read', ...wanted }
    }
    const { token, expiresAt } = apps.mintInstallationToken(inst, repositoryIds, permissions)
    const repos = repositoryIds
      ? repositoryIds.map((id) => [...world.repos.values()].find((r) => r.id === id)!)
      : null
    reply.code(201)
    return {
      token,
      expires_at: expiresAt,
      permissions,
      repository_selection: repositoryIds ? 'selected' : inst.repositorySelection,
      ...(repos ? { repositories: repos.map((r) => repository(world, r, ctx.urls, null)) } : {}),
    }
  })

  const installationOn = (req: FastifyRequest, account: string, doc: string) => {
    const ghApp = requireAppJwt(req)
    const inst = apps.installationOn(ghApp.id, account)
    if (!inst) throw notFound(doc)
    return installationJson(world, ghApp, inst, ctx.urls)
  }

  api.get('/repos/{owner}/{repo}/installation', async (req) => {
    const doc = `${APPS_DOCS}#get-a-repository-installation-for-the-authenticated-app`
    const ghApp = requireAppJwt(req)
    const repo = world.repo(params(req).owner!, params(req).repo!)
    const inst = repo ? apps.installationFor(ghApp.id, repo) : undefined
    if (!inst) throw notFound(doc)
    return installationJson(world, ghApp, inst, ctx.urls)
  })
  api.get('/orgs/{org}/installation', async (req) =>
    installationOn(
      req,
      params(req).org!,
      `${APPS_DOCS}#get-an-organization-installation-for-the-authenticated-app`,
    ),
  )
  api.get('/users/{username}/installation', async (req) =>
    installationOn(
      req,
      params(req).username!,
      `${APPS_DOCS}#get-a-user-installation-for-the-authenticated-app`,
    ),
  )

  api.get('/installation/repositories', async (req, reply) => {
    const token = req.sim.token
    const grant = token ? apps.grants.get(token.token) : undefined
    const inst =
      grant?.installationId !== undefined ? apps.installations.get(grant.installationId) : undefined
    if (!inst)
      throw new ApiError(
        403,
        'You must authenticate with an installation access token in order to list repositories for an installation.',
        { documentation_url: `${INSTALLATIONS_DOCS}#list-repositories-accessible-to-the-app-installation` },
      )
    const repos = apps
      .repositoriesOf(inst)
      .filter((r) => !grant?.repositoryIds || grant.repositoryIds.includes(r.id))
    return {
      total_count: repos.length,
      repository_selection: grant?.repositoryIds ? 'selected' : inst.repositorySelection,
      repositories: paginate(req, reply, repos).map((r) =>
        repository(world, r, ctx.urls, effectivePermission(ctx, req, r)),
      ),
    }
  })

  api.delete('/installation/token', async (req, reply) => {
    const token = req.sim.token
    if (!token || apps.grants.get(token.token)?.installationId === undefined)
      throw new ApiError(403, 'Resource not accessible by personal access token', {
        documentation_url: `${INSTALLATIONS_DOCS}#revoke-an-installation-access-token`,
      })
    token.revoked = true
    return reply.code(204).send()
  })

  /** User-to-server routes: only a GitHub App's own user token (ghu_) may call them. */
  const requireAppUser = (req: FastifyRequest) => {
    const token = req.sim.token
    if (!token || !req.sim.login)
      throw new ApiError(401, 'Requires authentication', { documentation_url: JWT_DOCS })
    const grant = apps.grants.get(token.token)
    if (!grant || grant.installationId !== undefined)
      throw new ApiError(
        403,
        'You must authenticate with an access token authorized to a GitHub App in order to list installations',
        {
          documentation_url: `${APPS_DOCS.replace('/apps', '/installations')}#list-app-installations-accessible-to-the-user-access-token`,
        },
      )
    return { ghApp: apps.apps.get(grant.appId)!, login: req.sim.login }
  }

  /** Repositories of an installation the user has explicit access to (owner, org member, collaborator). */
  const userRepos = (inst: InstallationRecord, login: string) => {
    const me = login.toLowerCase()
    return apps
      .repositoriesOf(inst)
      .filter(
        (r) =>
          r.owner.toLowerCase() === me ||
          world.org(r.owner)?.members.get(me)?.state === 'active' ||
          r.collaborators.has(me),
      )
  }

  /** GitHub lists the installations whose repositories the user can reach (or on their own account). */
  const userSees = (inst: InstallationRecord, login: string) =>
    inst.account.toLowerCase() === login.toLowerCase() || userRepos(inst, login).length > 0

  api.get('/user/installations', async (req, reply) => {
    const { ghApp, login } = requireAppUser(req)
    const list = apps
      .installationsOf(ghApp.id)
      .filter((i) => userSees(i, login))
      .sort((a, b) => a.id - b.id)
    return {
      total_count: list.length,
      installations: paginate(req, reply, list).map((i) => installationJson(world, ghApp, i, ctx.urls)),
    }
  })

  api.get('/user/installations/{installation_id}/repositories', async (req, reply) => {
    const { ghApp, login } = requireAppUser(req)
    const inst = apps.installations.get(Number(params(req).installation_id))
    if (!inst || inst.appId !== ghApp.id || !userSees(inst, login))
      throw notFound(`${INSTALLATIONS_DOCS}#list-repositories-accessible-to-the-user-access-token`)
    const repos = userRepos(inst, login)
    return {
      total_count: repos.length,
      repository_selection: inst.repositorySelection,
      repositories: paginate(req, reply, repos).map((r) =>
        repository(world, r, ctx.urls, world.permission(r, login)),
      ),
    }
  })

  // The install page (https://docs.github.com/apps/using-github-apps/installing-a-github-app-from-a-third-party):
  // the signed-in person (`login`, default the seed's oauth.defaultLogin) installs on `account`
  // (default their own) for all repositories or `repository_ids`; GitHub then sends them to the
  // Setup URL with installation_id, setup_action (install|update) and the state passed in.
  app.get(
    '/apps/:slug/installations/new',
    { config: { route: 'GET /apps/{slug}/installations/new' } },
    async (req, reply) => {
      const q = req.query as Record<string, string | undefined>
      const ghApp = apps.bySlug((req.params as P).slug ?? '')
      if (!ghApp) return page(reply, 404, 'Not Found', '<h1>404</h1><p>No such GitHub App.</p>')
      const login = q.login ?? world.defaultLogin
      const user = login ? world.user(login) : undefined
      if (!user) return page(reply, 400, 'No user', '<h1>No signed-in user</h1>')
      const account = world.user(q.account ?? user.login)?.login ?? world.org(q.account ?? '')?.login
      if (!account) return page(reply, 404, 'Not Found', '<h1>404</h1><p>No such account.</p>')
      const org = world.org(account)
      const isAdmin = org
        ? org.members.get(user.login.toLowerCase())?.role === 'admin' &&
          org.members.get(user.login.toLowerCase())?.state === 'active'
        : account.toLowerCase() === user.login.toLowerCase()
      if (!isAdmin)
        return page(
          reply,
          403,
          'Forbidden',
          `<h1>You can't install ${esc(ghApp.name)} on ${esc(account)}</h1><p>Only owners can install GitHub Apps.</p>`,
        )
      const ids = (q.repository_ids ?? '').split(',').filter(Boolean).map(Number)
      let inst = apps.installationOn(ghApp.id, account)
      const action = inst ? 'update' : 'install'
      if (!inst) {
        inst = apps.addInstallation(ghApp, {
          account,
          repository_selection: ids.length ? 'selected' : 'all',
          repositories: [],
        })
        inst.createdAt = inst.updatedAt = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')
        for (const id of ids) inst.repositoryIds.add(id)
        ctx.events.installation(inst, 'created', user.login)
      } else if (ids.length) {
        const added = ids.filter((id) => !inst!.repositoryIds.has(id))
        inst.repositorySelection = 'selected'
        for (const id of ids) inst.repositoryIds.add(id)
        if (added.length) ctx.events.installationRepositories(inst, 'added', added, [], user.login)
      }
      if (!ghApp.setupUrl)
        return page(
          reply,
          200,
          'Installed',
          `<h1>Installed ${esc(ghApp.name)}</h1><p id="installation-id">${inst.id}</p>`,
        )
      const to = new URL(ghApp.setupUrl)
      to.searchParams.set('installation_id', String(inst.id))
      to.searchParams.set('setup_action', action)
      if (q.state) to.searchParams.set('state', q.state)
      return reply.redirect(to.toString(), 302)
    },
  )

  app.get('/apps/:slug', { config: { route: 'GET /apps/{slug}' } }, async (req, reply) => {
    const ghApp = apps.bySlug((req.params as P).slug ?? '')
    if (!ghApp) return page(reply, 404, 'Not Found', '<h1>404</h1>')
    return page(
      reply,
      200,
      ghApp.name,
      `<h1>${esc(ghApp.name)}</h1><p>Owner: ${esc(accountJson(world, ghApp.owner, ctx.urls).login)}</p><a href="/apps/${esc(ghApp.slug)}/installations/new">Install</a>`,
    )
  })
}

/** Removes an installation (GitHub: uninstall), revoking its tokens and sending `installation.deleted`. */
export function removeInstallation(ctx: SimContext, id: number, senderLogin: string | null): boolean {
  const inst = ctx.apps.installations.get(id)
  if (!inst) return false
  ctx.events.installation(inst, 'deleted', senderLogin)
  ctx.apps.installations.delete(id)
  ctx.apps.revokeInstallationTokens(id)
  return true
}

function withinPermissions(wanted: AppPermissions, granted: AppPermissions): boolean {
  const rank = { read: 1, write: 2, admin: 3 } as const
  return Object.entries(wanted).every(([k, v]) => {
    const g = granted[k]
    return g !== undefined && rank[g] >= rank[v]
  })
}

function page(reply: FastifyReply, status: number, title: string, body: string) {
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .send(
      `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body>${body}</body></html>`,
    )
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
