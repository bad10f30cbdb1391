import { findDeploymentByPull } from '@portico/db'
import { applyPullState, isSpecsRepository, type PullState } from '../../deploy/follow-pull-request.js'
import { ignored, processed, type WebhookHandler } from '../types.js'

/**
 * `pull_request` closed on the specs repository, for a deploy branch: the deployment becomes
 * `merged` (`merged_at`, `merge_commit_sha`; its merge commit's checks are looked at at once) or
 * `closed`. https://docs.github.com/en/webhooks/webhook-events-and-payloads#pull_request
 */
export const pullRequestHandler: WebhookHandler = async (ctx, payload) => {
  if (payload.action !== 'closed') return ignored(`action ${String(payload.action)}`)
  const repository = payload.repository as { full_name?: unknown } | undefined
  if (!isSpecsRepository(ctx, repository?.full_name)) return ignored('not the specs repository')
  const pull = payload.pull_request as
    | (PullState & { number?: unknown; head?: { ref?: unknown } })
    | undefined
  const number = typeof payload.number === 'number' ? payload.number : pull?.number
  const branch = pull?.head?.ref
  if (!pull || typeof number !== 'number' || typeof branch !== 'string') return ignored('no pull request')
  const row = await findDeploymentByPull(ctx.db, number, branch)
  if (!row) return ignored(`pull request #${number} is not a deploy`)
  const changed = await applyPullState(ctx, row, pull)
  return processed(changed ? `deployment ${row.id} ${changed}` : `deployment ${row.id} unchanged`)
}
