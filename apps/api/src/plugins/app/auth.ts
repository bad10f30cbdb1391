import { createHash, randomUUID } from 'node:crypto'
import { refreshToken as refreshUserToken } from '@octokit/oauth-methods'
import {
  AppError,
  createOctokit,
  decrypt,
  encrypt,
  type GithubActor,
  githubErrorStatus,
  isUuid,
  type Octokit,
} from '@portico/core'
import { findProjectAccess, findTenantForUser, type ProjectRole, type TenantRole } from '@portico/db'
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { LRUCache } from 'lru-cache'
import type { SessionUser } from '../external/session.js'

export type { ProjectRole, TenantRole }

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Who may call the route, checked in `onRequest` (before the body is read or anything is
     * validated, so an anonymous caller learns nothing of the route and gets no 400 before the
     * 401): `user` answers anonymous callers 401 NOT_AUTHENTICATED; `reader` too, unless
     * anonymous reads may act as the service account (`ALLOW_SERVICE_TOKEN_FALLBACK` with GH_TOKEN
     * or the GitHub App). Routes whose `preHandler` is requireUser or a role check get `user`.
     */
    auth?: 'user' | 'reader'
  }
  interface FastifyRequest {
    /** Signed-in user from the session (no GitHub call), or null. */
    user: {
      id: string
      login: string
      name: string | null
      avatar_url: string | null
      /** GitHub's numeric user id; absent in sessions made before it was stored. */
      github_id?: number
    } | null
    /** Set by requireProjectRole: the project (tenant-scoped) and the caller's effective role. */
    project?: { id: string; tenant_id: string; name: string; slug: string; role: ProjectRole }
    /** Set by requireTenantRole: the tenant and the caller's role in it. */
    tenant?: { id: string; slug: string; name: string; role: TenantRole }
    /**
     * The GitHub identity this request acts as: the signed-in user's token; otherwise, for a
     * read (GET/HEAD/OPTIONS) only, `GH_TOKEN` when `ALLOW_SERVICE_TOKEN_FALLBACK` is on;
     * otherwise 401 NOT_AUTHENTICATED. `{ requireUser: true }` never falls back, and neither does
     * any other method (no anonymous write, ever). A user token GitHub answers 401 for ends the
     * session and fails the request with 401 TOKEN_EXPIRED.
     */
    github(opts?: { requireUser?: boolean }): Promise<GithubActor>
  }
  interface FastifyInstance {
    /**
     * 401 NOT_AUTHENTICATED without a signed-in user. A route using it, or a role check below, as
     * a `preHandler` gets `config.auth = 'user'` (see {@link requiresUser}).
     */
    requireUser: preHandlerAsyncHookHandler
    /**
     * Loads `params.projectId` through the caller's tenant membership and sets `request.project`.
     * 401 NOT_AUTHENTICATED (before the body is read or anything validated); 404
     * PROJECT_NOT_FOUND (absent, or another tenant's); 403 INSUFFICIENT_ROLE when `roles` is
     * non-empty and the effective role is not among them.
     */
    requireProjectRole(...roles: ProjectRole[]): preHandlerAsyncHookHandler
    /** Same for `params.tenantId` and tenant roles; sets `request.tenant`. 404 TENANT_NOT_FOUND. */
    requireTenantRole(...roles: TenantRole[]): preHandlerAsyncHookHandler
    /**
     * Org gate, when ACCESS_ORG is set and the repo is private and owned by ACCESS_ORG: the
     * service actor never passes it (401 NOT_AUTHENTICATED: only a signed-in member may read);
     * a user who is not an active member gets 403 ORG_MEMBERSHIP_REQUIRED.
     */
    assertOrgAccess(actor: GithubActor, repo: { owner: string; private: boolean }): Promise<void>
    /**
     * Whether a signed-in user is an operator: their GitHub id is in OPERATOR_GITHUB_IDS, or
     * (deprecated, renamable) their login is in OPERATOR_LOGINS.
     */
    isOperator(user: { login: string; github_id?: number } | null | undefined): boolean
  }
}

/** Methods that only read; every other method is a write and never acts as the service token. */
export const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])
const ORG_CACHE_MS = 60_000
/**
 * Users' Octokit instances, by session token envelope: building one (plugins, rate-limit
 * groups) costs about half a millisecond and ~10 KB, too much to pay on every request.
 */
const ACTOR_CACHE = { max: 1000, ttl: 10 * 60_000 }

/** An expiring user token is refreshed when it has less than this left. */
export const REFRESH_MARGIN_MS = 5 * 60_000
/** How long one process holds the refresh lock of a session's refresh token. */
const REFRESH_LOCK_MS = 15_000
/** The exchange's own deadline, shorter than the lock. */
const REFRESH_EXCHANGE_TIMEOUT_MS = 10_000
const RELEASE_IF_OWNER = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`
const refreshBusy = () =>
  new AppError(
    503,
    'GITHUB_TOKEN_REFRESH_BUSY',
    'Your GitHub authorization is being renewed by another request. Try again in a few seconds.',
    { expose: true, headers: { 'retry-after': '5' } },
  )
/** How long a refresh's outcome stays readable by requests that carried the old refresh token. */
const REFRESH_RESULT_TTL_S = 300

/** A refreshed pair, as sessions store it (envelopes) plus the access token's expiry (epoch ms). */
interface RefreshedTokens {
  githubToken: string
  githubRefreshToken: string
  githubTokenExpiresAt: number
}

export const notAuthenticated = () =>
  new AppError(401, 'NOT_AUTHENTICATED', 'Sign in with GitHub to continue.')
const tokenExpired = () =>
  new AppError(401, 'TOKEN_EXPIRED', 'Your GitHub authorization has expired or was revoked. Sign in again.')
/** 403 INSUFFICIENT_ROLE naming the roles that may act. */
export const insufficientRole = (roles: readonly string[]) =>
  new AppError(403, 'INSUFFICIENT_ROLE', `This action requires one of: ${roles.join(', ')}.`)

/**
 * A tenant owner or admin acts as project owner or admin; otherwise the project role counts.
 * Returns null for a tenant member outside the project.
 */
export function effectiveProjectRole(
  tenantRole: TenantRole,
  projectRole: ProjectRole | null,
): ProjectRole | null {
  if (tenantRole === 'owner' || projectRole === 'owner') return 'owner'
  if (tenantRole === 'admin') return 'admin'
  return projectRole
}

/** Marks the pre-handlers that refuse anonymous callers (requireUser and the role checks). */
const REQUIRES_USER = Symbol('requiresUser')
const markRequiresUser = <T extends object>(handler: T): T =>
  Object.assign(handler, { [REQUIRES_USER]: true })

/**
 * Whether a route's `preHandler` option (one handler or a list) includes a check that refuses
 * anonymous callers: such a route gets `config.auth = 'user'`, so it answers them 401 in
 * `onRequest`, before its body is parsed or its params, query or body validated.
 */
export function requiresUser(preHandler: unknown): boolean {
  const handlers = Array.isArray(preHandler) ? preHandler : [preHandler]
  return handlers.some((h) => typeof h === 'function' && REQUIRES_USER in h)
}

/**
 * Marks every route registered later in `fastify`'s scope (a route folder's plugin or autohooks)
 * as needing a signed-in user, so anonymous callers get 401 before their body is parsed or
 * validated; for folders whose role check is a scope-wide preHandler hook, which the route's own
 * options do not show (see FastifyContextConfig.auth).
 */
export function signedInOnly(fastify: FastifyInstance): void {
  fastify.addHook('onRoute', (route) => {
    route.config = { ...route.config, auth: 'user' }
  })
}

/**
 * Who the request is (from the session), which GitHub token it acts with, and the role checks
 * routes use as pre-handlers.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    const { config } = fastify
    const actors = new WeakMap<FastifyRequest, Promise<GithubActor>>()
    const orgCache = new Map<string, { active: boolean; until: number }>()

    if (config.NODE_ENV === 'production' && config.ALLOW_SERVICE_TOKEN_FALLBACK && config.GH_TOKEN) {
      fastify.log.warn(
        'ALLOW_SERVICE_TOKEN_FALLBACK is on: anonymous visitors read through the GH_TOKEN account (never writes, never the ACCESS_ORG gate)',
      )
    }
    // A trial: production ran on the development default (http://localhost:3000) without a word.
    if (config.NODE_ENV === 'production' && !config.PUBLIC_URL.startsWith('https://')) {
      fastify.log.warn(
        { publicUrl: config.PUBLIC_URL },
        'PUBLIC_URL is not https in production: the session cookie is not Secure, and GitHub sends signed-in users back to this URL; set it to the public https origin',
      )
    }
    if (config.NODE_ENV === 'production' && config.operatorLogins.length > 0) {
      fastify.log.warn(
        'OPERATOR_LOGINS is deprecated: logins can be renamed and re-registered by someone else; list operators by numeric id in OPERATOR_GITHUB_IDS',
      )
    }

    fastify.decorateRequest('user', null)
    fastify.decorateRequest('project', undefined)
    fastify.decorateRequest('tenant', undefined)

    const serviceReads = () => config.ALLOW_SERVICE_TOKEN_FALLBACK && fastify.serviceActor.kind !== null
    // Who the caller is, and the route's `config.auth` enforced in the same hook: a cached read
    // pays for no extra hook.
    fastify.addHook('onRequest', async (request) => {
      // @fastify/session leaves a plain `{}` for a request target outside its cookie path (an
      // asterisk-form `OPTIONS *`): no session, not a TypeError.
      const session = typeof request.session?.get === 'function' ? request.session : undefined
      const user = session?.get('user')
      request.user = user && session?.get('githubToken') ? { ...user } : null
      if (request.user === null) {
        const auth = request.routeOptions.config?.auth
        if (auth === 'user' || (auth === 'reader' && !serviceReads())) throw notAuthenticated()
      }
    })

    const users = new LRUCache<string, { token: string; octokit: Octokit }>(ACTOR_CACHE)

    /**
     * The actor for a session's token envelope. An envelope is sealed with a random IV for one
     * session, so the cached Octokit belongs to `sessionId` alone: GitHub refusing its token
     * ends that session by id (no per-request AsyncLocalStorage, which costs every promise a
     * hook on Node 20).
     */
    const userActor = (user: SessionUser, sessionId: string, envelope: string): GithubActor => {
      let entry = users.get(envelope)
      if (!entry) {
        let token: string
        try {
          token = decrypt(config.keyring, envelope)
        } catch {
          // A session sealed with a key since removed from the ring: sign in again.
          throw tokenExpired()
        }
        const octokit: Octokit = createOctokit({ token, baseUrl: config.GITHUB_API_URL })
        // Centrally: GitHub rejecting the user's token ends the session.
        octokit.hook.error('request', async (error) => {
          if (githubErrorStatus(error) === 401) {
            users.delete(envelope)
            fastify.log.info({ userId: user.id }, 'GitHub rejected the user token; ending the session')
            await fastify.endSession(sessionId).catch((err: unknown) => {
              fastify.log.warn({ err, userId: user.id }, 'could not end the session of a rejected token')
            })
            throw tokenExpired()
          }
          throw error
        })
        entry = { token, octokit }
        users.set(envelope, entry)
      }
      return {
        octokit: entry.octokit,
        token: entry.token,
        source: 'user',
        login: user.login,
        userId: user.id,
      }
    }

    const refreshPrefix = `${config.REDIS_PREFIX}:gh-refresh`
    const refreshing = new Map<string, Promise<RefreshedTokens>>()
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

    /** The outcome another request (any process) already stored for this refresh token, if any. */
    const storedRefresh = async (key: string): Promise<RefreshedTokens | null> => {
      const sealed = await fastify.redis.get(`${refreshPrefix}:result:${key}`)
      if (!sealed) return null
      return JSON.parse(decrypt(config.keyring, sealed)) as RefreshedTokens
    }

    /**
     * Exchanges a refresh token at GitHub (`grant_type=refresh_token`, single use), once per
     * refresh token whatever the number of concurrent requests and processes: one in-process
     * promise per token, and across processes a Redis lock whose holder stores the (encrypted)
     * new pair for the others to read. GitHub refusing the exchange → 401 TOKEN_EXPIRED.
     * https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens
     */
    const refreshOnce = (refreshToken: string): Promise<RefreshedTokens> => {
      const key = createHash('sha256').update(refreshToken).digest('hex')
      let pending = refreshing.get(key)
      if (pending) return pending
      pending = (async () => {
        const deadline = Date.now() + REFRESH_LOCK_MS
        const lockKey = `${refreshPrefix}:lock:${key}`
        const owner = randomUUID()
        for (;;) {
          const done = await storedRefresh(key)
          if (done) return done
          const lock = await fastify.redis.set(lockKey, owner, 'PX', REFRESH_LOCK_MS, 'NX')
          if (lock === 'OK') break
          // Another process is still exchanging (or died holding the lock): the session stands,
          // this request is answered 503 and the next one tries again.
          if (Date.now() > deadline) throw refreshBusy()
          await sleep(100)
        }
        try {
          const clientId = config.GITHUB_OAUTH_CLIENT_ID
          const clientSecret = config.GITHUB_OAUTH_CLIENT_SECRET
          if (!clientId || !clientSecret) throw tokenExpired()
          let auth: { token: string; refreshToken: string; expiresAt: string }
          try {
            ;({ authentication: auth } = await refreshUserToken({
              clientType: 'github-app',
              clientId,
              clientSecret,
              refreshToken,
              // The OAuth endpoints live on GITHUB_URL (oauth-methods strips a GHES /api/v3).
              // Well inside the lock's lifetime, so no other process can take it over mid-exchange.
              request: createOctokit({
                baseUrl: config.GITHUB_URL,
                retries: 0,
                requestTimeoutMs: REFRESH_EXCHANGE_TIMEOUT_MS,
              }).request,
            }))
          } catch (err) {
            const status = githubErrorStatus(err)
            if (status !== undefined && status >= 400 && status < 500) throw tokenExpired()
            throw new AppError(502, 'GITHUB_UNAVAILABLE', 'GitHub could not be reached. Try again shortly.', {
              cause: err,
              expose: true,
            })
          }
          const tokens: RefreshedTokens = {
            githubToken: encrypt(config.keyring, auth.token),
            githubRefreshToken: encrypt(config.keyring, auth.refreshToken),
            githubTokenExpiresAt: new Date(auth.expiresAt).getTime(),
          }
          await fastify.redis.set(
            `${refreshPrefix}:result:${key}`,
            encrypt(config.keyring, JSON.stringify(tokens)),
            'EX',
            REFRESH_RESULT_TTL_S,
          )
          return tokens
        } finally {
          // Only our own lock: one that expired and was taken by another process stays theirs.
          await fastify.redis.eval(RELEASE_IF_OWNER, 1, lockKey, owner).catch(() => {})
        }
      })().finally(() => refreshing.delete(key))
      refreshing.set(key, pending)
      return pending
    }

    /**
     * The session's token envelope, refreshed first when it is an expiring user token within
     * {@link REFRESH_MARGIN_MS} of its expiry. A failed refresh ends the session (401 TOKEN_EXPIRED).
     */
    const currentEnvelope = async (request: FastifyRequest, envelope: string): Promise<string> => {
      const expiresAt = request.session.get('githubTokenExpiresAt')
      const refreshEnvelope = request.session.get('githubRefreshToken')
      if (!expiresAt || !refreshEnvelope || expiresAt - Date.now() > REFRESH_MARGIN_MS) return envelope
      try {
        let refreshToken: string
        try {
          refreshToken = decrypt(config.keyring, refreshEnvelope)
        } catch {
          throw tokenExpired()
        }
        const tokens = await refreshOnce(refreshToken)
        request.session.set('githubToken', tokens.githubToken)
        request.session.set('githubRefreshToken', tokens.githubRefreshToken)
        request.session.set('githubTokenExpiresAt', tokens.githubTokenExpiresAt)
        request.log.info({ userId: request.user?.id }, 'refreshed the GitHub user token')
        return tokens.githubToken
      } catch (err) {
        if ((err as AppError).code === 'TOKEN_EXPIRED') {
          request.log.info(
            { userId: request.user?.id },
            'GitHub refused the refresh token; ending the session',
          )
          request.user = null
          await request.session.destroy().catch(() => {})
        }
        throw err
      }
    }

    fastify.decorateRequest(
      'github',
      function github(this: FastifyRequest, opts: { requireUser?: boolean } = {}): Promise<GithubActor> {
        const key = opts.requireUser ? undefined : this
        const cached = key && actors.get(key)
        if (cached) return cached
        const resolve = async (): Promise<GithubActor> => {
          const user = this.user
          const envelope = this.session?.get('githubToken')
          if (user && envelope) {
            return userActor(user, this.session.sessionId, await currentEnvelope(this, envelope))
          }
          // No anonymous write, ever: only reads may act as the service account.
          if (
            opts.requireUser ||
            !READ_METHODS.has(this.method) ||
            !config.ALLOW_SERVICE_TOKEN_FALLBACK ||
            fastify.serviceActor.kind === null
          )
            throw notAuthenticated()
          // The GitHub App's installation when one is configured, else GH_TOKEN.
          const actor = await fastify.serviceActor.get()
          if (!actor) throw notAuthenticated()
          this.log.info({ githubActor: 'service' }, 'acting with the service identity (no signed-in user)')
          return actor
        }
        const promise = resolve()
        if (key) actors.set(key, promise)
        return promise
      },
    )

    const requireUser = markRequiresUser(async function requireUser(request: FastifyRequest) {
      if (!request.user) throw notAuthenticated()
    })
    fastify.decorate('requireUser', requireUser)
    // Routes registered after this plugin (all of routes/) whose pre-handlers refuse anonymous
    // callers refuse them first; a folder whose role check is a preHandler hook uses signedInOnly.
    fastify.addHook('onRoute', (route) => {
      if (route.config?.auth === undefined && requiresUser(route.preHandler)) {
        route.config = { ...route.config, auth: 'user' }
      }
    })

    fastify.decorate('requireProjectRole', (...roles: ProjectRole[]): preHandlerAsyncHookHandler => {
      return markRequiresUser(async function requireProjectRole(
        request: FastifyRequest,
        _reply: FastifyReply,
      ) {
        const user = request.user
        if (!user) throw notAuthenticated()
        const projectId = (request.params as { projectId?: string }).projectId
        const access =
          projectId && isUuid(projectId)
            ? await fastify.readCache.projectAccess(projectId, user.id, () =>
                findProjectAccess(fastify.db, projectId, user.id),
              )
            : undefined
        const role = access && effectiveProjectRole(access.tenantRole, access.projectRole)
        if (!access || !role) throw new AppError(404, 'PROJECT_NOT_FOUND', 'Project not found.')
        if (roles.length > 0 && !roles.includes(role)) throw insufficientRole(roles)
        const { id, tenant_id, name, slug } = access.project
        request.project = { id, tenant_id, name, slug, role }
      })
    })

    fastify.decorate('requireTenantRole', (...roles: TenantRole[]): preHandlerAsyncHookHandler => {
      return markRequiresUser(async function requireTenantRole(
        request: FastifyRequest,
        _reply: FastifyReply,
      ) {
        const user = request.user
        if (!user) throw notAuthenticated()
        const tenantId = (request.params as { tenantId?: string }).tenantId
        const tenant =
          tenantId && isUuid(tenantId) ? await findTenantForUser(fastify.db, tenantId, user.id) : undefined
        if (!tenant) throw new AppError(404, 'TENANT_NOT_FOUND', 'Tenant not found.')
        if (roles.length > 0 && !roles.includes(tenant.role)) throw insufficientRole(roles)
        request.tenant = { id: tenant.id, slug: tenant.slug, name: tenant.name, role: tenant.role }
      })
    })

    fastify.decorate(
      'assertOrgAccess',
      async function assertOrgAccess(actor: GithubActor, repo: { owner: string; private: boolean }) {
        const org = config.ACCESS_ORG
        if (!org || !repo.private || repo.owner.toLowerCase() !== org.toLowerCase()) return
        // The service account's own membership says nothing about the visitor's.
        if (actor.source !== 'user' || !actor.userId) {
          throw new AppError(
            401,
            'NOT_AUTHENTICATED',
            `Sign in with GitHub: private ${org} repositories are for active members of ${org}.`,
          )
        }
        const who = `user:${actor.userId}`
        const key = `${org.toLowerCase()}\u0000${who}`
        const hit = orgCache.get(key)
        let active: boolean
        if (hit && hit.until > Date.now()) {
          active = hit.active
        } else {
          try {
            const { data } = await actor.octokit.rest.orgs.getMembershipForAuthenticatedUser({ org })
            active = data.state === 'active'
          } catch (err) {
            // 404: not a member; 403: the token may not read memberships. Both deny.
            const status = githubErrorStatus(err)
            if (status !== 404 && status !== 403) throw err
            active = false
          }
          orgCache.set(key, { active, until: Date.now() + ORG_CACHE_MS })
        }
        if (!active) {
          throw new AppError(
            403,
            'ORG_MEMBERSHIP_REQUIRED',
            `Access to private ${org} repositories requires active membership of the ${org} organisation.`,
          )
        }
      },
    )

    fastify.decorate('isOperator', (user: { login: string; github_id?: number } | null | undefined) => {
      if (!user) return false
      if (user.github_id !== undefined && config.operatorGithubIds.includes(user.github_id)) return true
      return config.operatorLogins.includes(user.login.toLowerCase())
    })
  },
  { name: 'auth', dependencies: ['session', 'db', 'redis', 'github-app', 'read-cache', 'request-target'] },
)
