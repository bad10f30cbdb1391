import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import {
  AppError,
  deployJobId,
  encrypt,
  type GithubActor,
  redactSecrets,
  truncateMessage,
} from '@portico/core'
import {
  type Db,
  type DeploymentRow,
  failDeployment,
  findDeployment,
  findInFlightDeployment,
  insertDeployment,
  isUniqueViolation,
  listDeployments,
  ONE_DEPLOY_IN_FLIGHT_INDEX,
} from '@portico/db'
import {
  deployJobOptions,
  PodCatalog,
  type SpecsRepoInfo,
  toGithubAppError,
  validateDeployRequest,
  validateName,
  validatePodRef,
} from '@portico/pods'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import {
  DeployAccepted,
  DeployCreated,
  Deployment,
  DeploymentList,
  DeploymentParams,
  DeploymentQuery,
  PodList,
  PodParams,
  PodSpec,
  RefreshResult,
} from '../../schemas/pods.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
/** An in-flight row older than this whose job is gone is treated as abandoned. */
const ORPHAN_AFTER_MS = 60_000
const POLL_MS = [25, 50, 100, 200, 250]

const notJson = () => new AppError(400, 'INVALID_JSON', 'Request body must be JSON')

/** The public view of a deployment row: never the token. */
function deploymentView(row: DeploymentRow) {
  return {
    id: row.id,
    customer: row.customer,
    env: row.env,
    instance_name: row.instance_name,
    waf_enabled: row.waf_enabled,
    mode: row.mode,
    status: row.status,
    branch: row.branch,
    pr_url: row.pr_url,
    pr_number: row.pr_number,
    commit_message: row.commit_message,
    error:
      row.status === 'failed'
        ? {
            code: row.error_code ?? 'DEPLOY_FAILED',
            status: row.error_status ?? 502,
            message: row.error_message ?? 'The deploy failed',
          }
        : null,
    requested_by: row.requested_by,
    created_at: row.created_at,
    updated_at: row.updated_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
  }
}

const accepted = (row: DeploymentRow) => ({
  deployment_id: row.id,
  status: row.status,
  status_url: `/api/deployments/${row.id}`,
})

/** Polls a deployment until it finishes or `waitMs` passes; returns the last row seen. */
async function waitForDeployment(db: Db, id: string, waitMs: number): Promise<DeploymentRow | undefined> {
  const until = Date.now() + waitMs
  for (let i = 0; ; i++) {
    const row = await findDeployment(db, id)
    if (!row || row.status === 'succeeded' || row.status === 'failed') return row
    const left = until - Date.now()
    if (left <= 0) return row
    await new Promise((r) =>
      setTimeout(r, Math.min(left, POLL_MS[Math.min(i, POLL_MS.length - 1)] as number)),
    )
  }
}

/**
 * Pods and GitOps deploys: `GET /api/pods`, `GET /api/pod(s)/:customer/:env`, `POST /api/pod`,
 * `POST /api/refresh`, `GET /api/deployments(/:id)`. Every route acts as `request.github()`
 * (the user, else GH_TOKEN when the fallback is allowed) behind the ACCESS_ORG gate.
 */
export default async function podsRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  const { config, db } = fastify
  const [owner, repo] = (config.GH_REPO ?? '').split('/')
  const catalog =
    owner && repo
      ? new PodCatalog(
          { owner, repo, branch: config.WORKFLOW_BRANCH, specsPath: config.SPECS_PATH },
          // Shared by every API process (still revalidated with the caller's token on each use).
          { shared: { redis: fastify.redis, prefix: config.QUEUE_PREFIX } },
        )
      : null
  const gated = Boolean(config.ACCESS_ORG && owner?.toLowerCase() === config.ACCESS_ORG.toLowerCase())

  // The frontend's contract: anything that is not a JSON object is "Request body must be JSON".
  fastify.removeContentTypeParser('application/json')
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '') return done(null, undefined)
    try {
      done(null, JSON.parse(body as string))
    } catch {
      done(notJson(), undefined)
    }
  })
  fastify.addContentTypeParser('*', { parseAs: 'string' }, (_req, _body, done) => done(null, undefined))

  /**
   * Resolves the acting identity and applies the org gate when it can apply (ACCESS_ORG owns
   * GH_REPO). The repository's visibility is read, with the caller's token and ETag-cached, only
   * for callers who are not active members. Access itself is GitHub's answer to the caller's own
   * token on every read.
   */
  async function access(request: FastifyRequest): Promise<{ actor: GithubActor; catalog: PodCatalog }> {
    if (!catalog) {
      throw new AppError(
        503,
        'PODS_NOT_CONFIGURED',
        'Pods are not configured: set GH_REPO to the specs repository.',
        { expose: true },
      )
    }
    const actor = await request.github()
    if (gated) {
      try {
        // Active members pass whatever the visibility, so it is only read for everyone else.
        await fastify.assertOrgAccess(actor, { owner: catalog.location.owner, private: true })
      } catch (err) {
        if ((err as AppError).code !== 'ORG_MEMBERSHIP_REQUIRED') throw err
        let info: SpecsRepoInfo
        try {
          info = await catalog.repoInfo(actor.octokit, actor.token)
        } catch {
          throw err // invisible to the caller: the org rule is the answer, not a 404
        }
        await fastify.assertOrgAccess(actor, info) // a public repository is open to all
      }
    }
    return { actor, catalog }
  }

  /** Runs a handler, mapping GitHub failures (unreachable, rate limited, 401…) to clear errors. */
  const github = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work()
    } catch (err) {
      throw toGithubAppError(err)
    }
  }

  fastify.get('/pods', { schema: { response: { 200: PodList } } }, async (request) =>
    github(async () => {
      const { actor, catalog } = await access(request)
      return catalog.list(actor.octokit)
    }),
  )

  const getPod = async (request: FastifyRequest<{ Params: { customer: string; env: string } }>) => {
    const pod = validatePodRef(request.params.customer, request.params.env)
    return github(async () => {
      const { actor, catalog } = await access(request)
      return catalog.getSpec(actor.octokit, pod)
    })
  }
  fastify.get('/pod/:customer/:env', { schema: { params: PodParams, response: { 200: PodSpec } } }, getPod)
  fastify.get('/pods/:customer/:env', { schema: { params: PodParams, response: { 200: PodSpec } } }, getPod)

  fastify.post('/refresh', { schema: { response: { 200: RefreshResult } } }, async (request) => {
    await request.github()
    await catalog?.clear()
    return { message: 'Cache cleared' }
  })

  /** Marks an in-flight row whose job no longer exists (lost Redis data, removed job) as failed. */
  async function releaseIfOrphaned(row: DeploymentRow): Promise<boolean> {
    if (Date.now() - row.created_at.getTime() < ORPHAN_AFTER_MS) return false
    const job = await fastify.queues.deploy.getJob(deployJobId(row.id))
    const state = job ? await job.getState() : 'missing'
    if (state !== 'missing' && state !== 'failed' && state !== 'completed' && state !== 'unknown')
      return false
    await failDeployment(db, row.id, {
      code: 'DEPLOY_ABANDONED',
      status: 503,
      message: 'The deploy job was lost before it finished',
    })
    return true
  }

  fastify.post(
    '/pod',
    { schema: { response: { 201: DeployCreated, 202: DeployAccepted } } },
    async (request, reply) => {
      const input = validateDeployRequest(request.body)
      const { actor, catalog } = await github(() => access(request))
      const where = `${input.customer}/${input.env}`
      if (input.mode === 'new') {
        const pods = await github(() => catalog.list(actor.octokit))
        if (pods.some((p) => p.customer === input.customer && p.env === input.env)) {
          throw new AppError(409, 'POD_EXISTS', `Pod already exists: ${where}`)
        }
      }

      const values = {
        customer: input.customer,
        env: input.env,
        instance_name: input.instance_name,
        waf_enabled: input.waf_enabled,
        mode: input.mode,
        commit_message: input.commit_message,
        requested_by: actor.userId,
        token_source: actor.source,
        // The job acts as the requester: their token travels encrypted on the row, never in job data.
        encrypted_token: actor.source === 'user' ? encrypt(config.keyring, actor.token) : null,
      }
      let row: DeploymentRow | undefined
      for (let tries = 0; !row && tries < 2; tries++) {
        try {
          row = await insertDeployment(db, values)
        } catch (err) {
          if (!isUniqueViolation(err, ONE_DEPLOY_IN_FLIGHT_INDEX)) throw err
          const running = await findInFlightDeployment(db, input.customer, input.env)
          if (running && !(await releaseIfOrphaned(running))) return reply.code(202).send(accepted(running))
        }
      }
      if (!row) throw new AppError(409, 'DEPLOY_IN_PROGRESS', `A deploy of ${where} is already in progress`)

      try {
        await fastify.enqueue('deploy', { deploymentId: row.id }, deployJobOptions(deployJobId(row.id)))
      } catch (err) {
        // Without a job the row would block the pod: record the failure, then report it.
        const e = err as AppError
        await failDeployment(db, row.id, {
          code: e.code ?? 'QUEUE_UNAVAILABLE',
          status: e.statusCode ?? 503,
          message: truncateMessage(redactSecrets(e.message), 500),
        })
        throw err
      }

      const done = (await waitForDeployment(db, row.id, config.DEPLOY_WAIT_MS)) ?? row
      if (done.status === 'succeeded' && done.branch && done.pr_url && done.pr_number !== null) {
        return reply.code(201).send({
          deployment_id: done.id,
          branch: done.branch,
          pr_url: done.pr_url,
          pr_number: done.pr_number,
        })
      }
      if (done.status === 'failed') {
        throw new AppError(
          done.error_status ?? 502,
          done.error_code ?? 'DEPLOY_FAILED',
          done.error_message ?? 'The deploy failed',
          { expose: true, details: { deployment_id: done.id } },
        )
      }
      return reply.code(202).send(accepted(done))
    },
  )

  fastify.get(
    '/deployments/:id',
    { schema: { params: DeploymentParams, response: { 200: Deployment } } },
    async (request) => {
      await github(() => access(request))
      const row = UUID.test(request.params.id) ? await findDeployment(db, request.params.id) : undefined
      if (!row) throw new AppError(404, 'DEPLOYMENT_NOT_FOUND', `Deployment not found: ${request.params.id}`)
      return deploymentView(row)
    },
  )

  fastify.get(
    '/deployments',
    { schema: { querystring: DeploymentQuery, response: { 200: DeploymentList } } },
    async (request) => {
      const { customer, env, limit } = request.query
      const filter = {
        ...(customer !== undefined ? { customer: validateName(customer, 'customer') } : {}),
        ...(env !== undefined ? { env: validateName(env, 'environment') } : {}),
        limit: limit ?? 20,
      }
      await github(() => access(request))
      return { deployments: (await listDeployments(db, filter)).map(deploymentView) }
    },
  )
}
