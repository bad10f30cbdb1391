import {
  AppError,
  type DeployJobData,
  deployJobId,
  deployJobOptions,
  encrypt,
  type GithubActor,
  redactSecrets,
  truncateMessage,
} from '@portico/core'
import {
  beginDeployment,
  type DeploymentRow,
  failDeployment,
  findDeployment,
  sameDeployFields,
} from '@portico/db'
import type { ResolvedDeployRequest } from '@portico/pods'
import type { Job } from 'bullmq'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** The answer to a deploy request: 201 with the pull request, or 202 pointing at the deployment. */
export type DeployAnswer =
  | { statusCode: 201; body: { deployment_id: string; branch: string; pr_url: string; pr_number: number } }
  | { statusCode: 202; body: { deployment_id: string; status: string; status_url: string } }

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Starts a deploy of one pod as `actor` and waits up to DEPLOY_WAIT_MS for its job:
     * 201 when the pull request is open, 202 while it runs. A pod with a deploy in flight: 202
     * pointing at it when the spec values are the same, else 409 DEPLOY_IN_PROGRESS naming it.
     * A failed job throws its recorded error (with `deployment_id`). `requestId` (the HTTP
     * request's id) travels in the job for the worker's logs.
     */
    requestDeploy(actor: GithubActor, input: ResolvedDeployRequest, requestId?: string): Promise<DeployAnswer>
  }
}

const statusUrl = (id: string) => `/api/deployments/${id}`
const accepted = (row: DeploymentRow): DeployAnswer => ({
  statusCode: 202,
  body: { deployment_id: row.id, status: row.status, status_url: statusUrl(row.id) },
})

/** Deploy orchestration for the routes: the row, the job, and the wait for its outcome. */
export default fp(
  async (fastify: FastifyInstance) => {
    const { config, db } = fastify

    /** Waits for the job through the shared QueueEvents (no polling); the row is the truth. */
    async function settle(row: DeploymentRow): Promise<DeploymentRow> {
      if (config.DEPLOY_WAIT_MS > 0) {
        const job = (await fastify.queues.deploy.getJob(deployJobId(row.id))) as
          | Job<DeployJobData>
          | undefined
        // Resolves on completion, rejects on final failure or after the ttl: the row says which.
        await job?.waitUntilFinished(fastify.deployEvents(), config.DEPLOY_WAIT_MS).catch(() => {})
      }
      return (await findDeployment(db, row.id)) ?? row
    }

    fastify.decorate(
      'requestDeploy',
      async (actor: GithubActor, input: ResolvedDeployRequest, requestId?: string) => {
        const where = `${input.customer}/${input.env}`
        const begun = await beginDeployment(
          db,
          fastify.queues.deploy,
          {
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
          },
          deployJobId,
        )
        if (!begun.started) {
          const running = begun.row
          if (sameDeployFields(running, input)) return accepted(running)
          throw new AppError(
            409,
            'DEPLOY_IN_PROGRESS',
            `A deploy of ${where} is already in progress (deployment ${running.id}); try again when it has finished.`,
            { details: { deployment_id: running.id, status_url: statusUrl(running.id) } },
          )
        }
        const row = begun.row
        try {
          await fastify.enqueue(
            'deploy',
            { deploymentId: row.id, ...(requestId ? { requestId } : {}) },
            deployJobOptions(deployJobId(row.id)),
          )
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

        const done = await settle(row)
        if (done.status === 'succeeded' && done.branch && done.pr_url && done.pr_number !== null) {
          return {
            statusCode: 201,
            body: {
              deployment_id: done.id,
              branch: done.branch,
              pr_url: done.pr_url,
              pr_number: done.pr_number,
            },
          }
        }
        if (done.status === 'failed') {
          throw new AppError(
            done.error_status ?? 502,
            done.error_code ?? 'DEPLOY_FAILED',
            done.error_message ?? 'The deploy failed',
            { expose: true, details: { deployment_id: done.id } },
          )
        }
        return accepted(done)
      },
    )
  },
  { name: 'deploys', dependencies: ['queues', 'db'] },
)
