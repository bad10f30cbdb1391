import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { AppError, isUuid } from '@portico/core'
import { type DeploymentRow, findDeployment, listDeployments } from '@portico/db'
import { validateName } from '@portico/pods'
import type { FastifyInstance } from 'fastify'
import { signedInOnly } from '../../../plugins/app/auth.js'
import { errorResponses } from '../../../schemas/common.js'
import { Deployment, DeploymentList, DeploymentParams, DeploymentQuery } from '../../../schemas/pods.js'

const tags = ['deployments']

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
    stage: row.stage,
    merged_at: row.merged_at,
    merge_commit_sha: row.merge_commit_sha,
    applied_at: row.applied_at,
    checks: row.checks ?? [],
    superseded_by: row.superseded_by,
  }
}

/**
 * `GET /api/deployments` (recent history) and `GET /api/deployments/{id}` (one deploy's status):
 * signed-in users whose GitHub account can read the specs repository (404 SPECS_REPO_NOT_FOUND
 * otherwise, as for the pods themselves).
 */
export default async function deploymentsRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  signedInOnly(fastify)

  fastify.get(
    '/:id',
    {
      schema: {
        tags,
        summary: 'One deployment: status, pull request, error, and the PR’s stage (merged, applied…)',
        params: DeploymentParams,
        response: { 200: Deployment, ...errorResponses(401, 403, 404, 503) },
      },
    },
    async (request) => {
      await fastify.specsAccess(request, { repoVisible: true })
      const { id } = request.params
      const row = isUuid(id) ? await findDeployment(fastify.db, id) : undefined
      if (!row) throw new AppError(404, 'DEPLOYMENT_NOT_FOUND', `Deployment not found: ${id}`)
      return deploymentView(row)
    },
  )

  fastify.get(
    '/',
    {
      schema: {
        tags,
        summary: 'Recent deployments, newest first, optionally of one customer and/or environment',
        querystring: DeploymentQuery,
        response: { 200: DeploymentList, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (request) => {
      const { customer, env, limit } = request.query
      const filter = {
        ...(customer !== undefined ? { customer: validateName(customer, 'customer') } : {}),
        ...(env !== undefined ? { env: validateName(env, 'environment') } : {}),
        limit: limit ?? 20,
      }
      await fastify.specsAccess(request, { repoVisible: true })
      return { deployments: (await listDeployments(fastify.db, filter)).map(deploymentView) }
    },
  )
}
