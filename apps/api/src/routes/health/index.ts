import { createOctokit } from '@portico/core'
import { PodCatalog, statusOf } from '@portico/pods'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'

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

type GithubState = 'ok' | 'unconfigured' | 'unauthorized' | 'rate_limited' | 'unavailable'
type RepoState = 'ok' | 'unconfigured' | 'not_found' | 'unknown' | 'unavailable'

interface GithubHealth {
  github: GithubState
  repo: RepoState
  scopes: { repo: boolean; workflow: boolean }
  rate_limit: { remaining: number; limit: number; reset_at: string } | null
}

const githubState = (err: unknown): GithubState => {
  const status = statusOf(err)
  if (status === 401) return 'unauthorized'
  if (status === 403 || status === 429) return 'rate_limited'
  return 'unavailable'
}

/**
 * GitHub as the service token sees it: `GET /rate_limit` (never counted) for reachability,
 * scopes and quota, then the specs repository (ETag-revalidated, so a steady check costs no
 * counted calls). Without GH_TOKEN GitHub is `unconfigured`, which does not fail the check.
 */
async function checkGithub(fastify: FastifyInstance, catalog: PodCatalog | null): Promise<GithubHealth> {
  const { config } = fastify
  const token = config.GH_TOKEN
  const result: GithubHealth = {
    github: 'unconfigured',
    repo: catalog ? 'unknown' : 'unconfigured',
    scopes: { repo: false, workflow: false },
    rate_limit: null,
  }
  if (!token) return result
  const octokit = createOctokit({
    token,
    baseUrl: config.GITHUB_API_URL,
    retries: 0,
    throttle: false,
    requestTimeoutMs: TIMEOUT_MS,
  })
  try {
    const res = await octokit.request('GET /rate_limit')
    const scopes = String(res.headers['x-oauth-scopes'] ?? '')
      .split(',')
      .map((s) => s.trim())
    const core = res.data.resources.core
    result.github = 'ok'
    result.scopes = { repo: scopes.includes('repo'), workflow: scopes.includes('workflow') }
    result.rate_limit = {
      remaining: core.remaining,
      limit: core.limit,
      reset_at: new Date(core.reset * 1000).toISOString(),
    }
  } catch (err) {
    result.github = githubState(err)
    return result
  }
  if (catalog) {
    try {
      await catalog.repoInfo(octokit, token)
      result.repo = 'ok'
    } catch (err) {
      const code = (err as { code?: string }).code
      result.repo = code === 'SPECS_REPO_NOT_FOUND' ? 'not_found' : 'unavailable'
    }
  }
  return result
}

/** Liveness and readiness probes for orchestrators, and the full `GET /health` check. */
export default async function health(fastify: FastifyInstance) {
  const [owner, repo] = (fastify.config.GH_REPO ?? '').split('/')
  const catalog =
    owner && repo
      ? new PodCatalog({
          owner,
          repo,
          branch: fastify.config.WORKFLOW_BRANCH,
          specsPath: fastify.config.SPECS_PATH,
        })
      : null

  fastify.get('/', async (request, reply) => {
    const [pg, redis, gh] = await Promise.allSettled([
      withTimeout(sql`select 1`.execute(fastify.db), 'postgres'),
      withTimeout(fastify.redis.ping(), 'redis'),
      withTimeout(checkGithub(fastify, catalog), 'github'),
    ])
    const github: GithubHealth =
      gh.status === 'fulfilled'
        ? gh.value
        : {
            github: 'unavailable',
            repo: catalog ? 'unknown' : 'unconfigured',
            scopes: { repo: false, workflow: false },
            rate_limit: null,
          }
    const body = {
      github: github.github,
      repo: github.repo,
      scopes: github.scopes,
      rate_limit: github.rate_limit,
      postgres: pg.status === 'fulfilled' ? 'ok' : 'unavailable',
      redis: redis.status === 'fulfilled' ? 'ok' : 'unavailable',
    }
    const failing = [
      ...(body.postgres === 'ok' ? [] : ['postgres unavailable']),
      ...(body.redis === 'ok' ? [] : ['redis unavailable']),
      ...(body.github === 'ok' || body.github === 'unconfigured' ? [] : [`github ${body.github}`]),
      ...(['ok', 'unconfigured', 'unknown'].includes(body.repo) ? [] : [`repo ${body.repo}`]),
    ]
    if (failing.length === 0) return { status: 'healthy', ...body }
    request.log.warn({ failing }, 'unhealthy')
    return reply.code(503).send({ status: 'unhealthy', message: `Unhealthy: ${failing.join(', ')}`, ...body })
  })

  fastify.get('/live', async () => ({ status: 'ok' }))

  fastify.get('/ready', async (request, reply) => {
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
      error: 'Service Unavailable',
      message: `Not ready: ${failing.join(' and ')} unavailable`,
      postgres,
      redis,
    })
  })
}
