import { classifyGithubError, classifyToken, createOctokit, type TokenKind } from '@portico/core'
import type { PodCatalog } from '@portico/pods'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { Health, Live, NotReady, Ready } from '../../schemas/health.js'

const TIMEOUT_MS = 2000

async function withTimeout<T>(work: Promise<T>, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label} did not answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS)
  })
  try {
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}

type GithubState =
  | 'connected'
  | 'unconfigured'
  | 'unauthorized'
  | 'rate_limited'
  | 'forbidden'
  | 'unavailable'
type RepoState = 'ok' | 'unconfigured' | 'not_found' | 'unknown' | 'unavailable'

/** How long the GitHub part of `/health` is reused: a flood of checks is not a flood of GitHub calls. */
export const GITHUB_HEALTH_TTL_MS = 30_000

interface GithubHealth {
  github: GithubState
  repo_status: RepoState
  /** From `X-OAuth-Scopes`; null for tokens GitHub lists no scopes for (fine-grained PATs, apps). */
  scopes: { repo: boolean; workflow: boolean } | null
  /** The service token's kind by its prefix (`classic-pat`, `fine-grained-pat`, …); null without one. */
  token_kind: TokenKind | null
  /** `reset_at` in Unix seconds, as GitHub's `X-RateLimit-Reset`. */
  rate_limit: { remaining: number; limit: number; reset_at: number } | null
}

/** The service identity's token kind: `server-to-server` for the App, GH_TOKEN's kind otherwise. */
const serviceTokenKind = (fastify: FastifyInstance): TokenKind | null => {
  const kind = fastify.serviceActor.kind
  if (kind === 'app') return 'server-to-server'
  return kind === 'token' && fastify.config.GH_TOKEN ? classifyToken(fastify.config.GH_TOKEN) : null
}

/**
 * The service token's state from GitHub's refusal, by cause (the shared classifier): a 403 is a
 * rate limit only when GitHub says so; an organisation policy or a missing permission is `forbidden`.
 */
const githubState = (err: unknown): GithubState => {
  switch (classifyGithubError(err).kind) {
    case 'unauthorized':
      return 'unauthorized'
    case 'rate_limited':
      return 'rate_limited'
    case 'sso_required':
    case 'oauth_app_restricted':
    case 'ip_not_allowed':
    case 'token_policy':
    case 'permission_missing':
    case 'forbidden':
      return 'forbidden'
    default:
      return 'unavailable'
  }
}

/**
 * GitHub as the service token sees it: `GET /rate_limit` (never counted) for reachability,
 * scopes and quota, then the specs repository (ETag-revalidated, so a steady check costs no
 * counted calls). The service identity is the GitHub App's installation on GH_REPO's owner when an
 * App is configured, else GH_TOKEN. Without either GitHub is `unconfigured`, which does not fail the check.
 */
async function checkGithub(fastify: FastifyInstance, catalog: PodCatalog | null): Promise<GithubHealth> {
  const { config, serviceActor } = fastify
  const result: GithubHealth = {
    github: 'unconfigured',
    repo_status: catalog ? 'unknown' : 'unconfigured',
    scopes: null,
    token_kind: serviceTokenKind(fastify),
    rate_limit: null,
  }
  if (serviceActor.kind === null) return result
  // With a GitHub App the service actor is its installation on GH_REPO's owner (minted here).
  let token: string
  try {
    const actor = await serviceActor.get()
    if (!actor) {
      result.github = 'unauthorized' // the App is not installed on GH_REPO's owner
      return result
    }
    token = actor.token
  } catch (err) {
    result.github = githubState(err)
    return result
  }
  const octokit = createOctokit({
    token,
    baseUrl: config.GITHUB_API_URL,
    retries: 0,
    throttle: false,
    requestTimeoutMs: TIMEOUT_MS,
  })
  try {
    const res = await octokit.request('GET /rate_limit')
    const header = res.headers['x-oauth-scopes']
    const core = res.data.resources.core
    result.github = 'connected'
    if (typeof header === 'string') {
      const scopes = header.split(',').map((s) => s.trim())
      result.scopes = { repo: scopes.includes('repo'), workflow: scopes.includes('workflow') }
    }
    result.rate_limit = { remaining: core.remaining, limit: core.limit, reset_at: Math.trunc(core.reset) }
  } catch (err) {
    result.github = githubState(err)
    return result
  }
  if (catalog) {
    try {
      await catalog.repoInfo(octokit, token)
      result.repo_status = 'ok'
    } catch (err) {
      const code = (err as { code?: string }).code
      result.repo_status = code === 'SPECS_REPO_NOT_FOUND' ? 'not_found' : 'unavailable'
    }
  }
  return result
}

/**
 * Liveness and readiness probes for orchestrators, and the full `GET /health` check in the
 * shape the frontend and load balancers read (that of the system Portico replaces):
 * `{status, github, repo, scopes, rate_limit}` plus `token_kind`, `repo_status`, `postgres`,
 * `redis`; 503 with `status: "unhealthy"` and `error` naming what fails.
 */
export default async function health(fastify: FastifyInstance) {
  const catalog = fastify.podCatalog
  let cached: { value: GithubHealth; until: number } | undefined
  let inFlight: Promise<GithubHealth> | undefined

  /** The GitHub part, computed at most once per {@link GITHUB_HEALTH_TTL_MS} (concurrent checks share one). */
  function githubHealth(): Promise<GithubHealth> {
    if (cached && cached.until > Date.now()) return Promise.resolve(cached.value)
    inFlight ??= withTimeout(checkGithub(fastify, catalog), 'github')
      .catch(
        (): GithubHealth => ({
          github: 'unavailable',
          repo_status: catalog ? 'unknown' : 'unconfigured',
          scopes: null,
          token_kind: serviceTokenKind(fastify),
          rate_limit: null,
        }),
      )
      .then((value) => {
        cached = { value, until: Date.now() + GITHUB_HEALTH_TTL_MS }
        return value
      })
      .finally(() => {
        inFlight = undefined
      })
    return inFlight
  }

  fastify.get(
    '/',
    {
      schema: {
        tags: ['health'],
        summary: 'Full health check: Postgres, Redis, GitHub and the specs repository',
        description:
          '200 `status: healthy`, or 503 with the same fields, `status: unhealthy` and `error` naming what fails. GitHub is checked with the service token (cached briefly); an unconfigured GitHub or specs repository is not a failure.',
        response: { 200: Health, 503: Health },
      },
    },
    async (request, reply) => {
      const [pg, redis, github] = await Promise.all([
        withTimeout(sql`select 1`.execute(fastify.db), 'postgres').then(
          () => 'ok' as const,
          () => 'unavailable' as const,
        ),
        withTimeout(fastify.redis.ping(), 'redis').then(
          () => 'ok' as const,
          () => 'unavailable' as const,
        ),
        githubHealth(),
      ])
      const body = {
        github: github.github,
        repo: fastify.config.GH_REPO ?? null,
        scopes: github.scopes,
        token_kind: github.token_kind,
        rate_limit: github.rate_limit,
        repo_status: github.repo_status,
        postgres: pg,
        redis,
      }
      const failing = [
        ...(pg === 'ok' ? [] : ['postgres unavailable']),
        ...(redis === 'ok' ? [] : ['redis unavailable']),
        ...(github.github === 'connected' || github.github === 'unconfigured'
          ? []
          : [`github ${github.github}`]),
        ...(['ok', 'unconfigured', 'unknown'].includes(github.repo_status)
          ? []
          : [`repo ${github.repo_status}`]),
      ]
      if (failing.length === 0) return { status: 'healthy', ...body }
      request.log.warn({ failing }, 'unhealthy')
      return reply.code(503).send({ status: 'unhealthy', error: `Unhealthy: ${failing.join(', ')}`, ...body })
    },
  )

  fastify.get(
    '/live',
    { schema: { tags: ['health'], summary: 'Liveness: the process answers', response: { 200: Live } } },
    async () => ({ status: 'ok' as const }),
  )

  fastify.get(
    '/ready',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness: Postgres and Redis answer',
        response: { 200: Ready, 503: NotReady },
      },
    },
    async (request, reply) => {
      const checks = await Promise.allSettled([
        withTimeout(sql`select 1`.execute(fastify.db), 'postgres'),
        withTimeout(fastify.redis.ping(), 'redis'),
      ])
      const [postgres, redis] = checks.map((c) => (c.status === 'fulfilled' ? 'ok' : 'unavailable'))
      const failing = (['postgres', 'redis'] as const).filter((_, i) => checks[i]?.status === 'rejected')
      for (const [i, c] of checks.entries()) {
        if (c.status === 'rejected')
          request.log.warn({ err: c.reason, dependency: i === 0 ? 'postgres' : 'redis' }, 'not ready')
      }
      if (failing.length === 0) return { status: 'ready', postgres, redis }
      return reply.code(503).send({
        statusCode: 503,
        code: 'NOT_READY',
        error: `Not ready: ${failing.join(' and ')} unavailable`,
        message: `Not ready: ${failing.join(' and ')} unavailable`,
        postgres,
        redis,
      })
    },
  )
}
