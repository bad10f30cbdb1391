import { listMergedDeploymentsByCommit } from '@portico/db'
import type { WorkerContext } from '../../context.js'
import { isSpecsRepository, settleFromChecks } from '../../deploy/follow-pull-request.js'
import { ignored, processed, type WebhookHandlerResult } from '../types.js'

/**
 * Shared by the check_run, check_suite, status and workflow_run handlers: a check on commit
 * `sha` of the specs repository completed, so the merged deployments whose merge commit it is
 * are evaluated against every check on that commit (GitHub is asked: a single event does not
 * say whether the others are done).
 */
export async function onCommitCheck(
  ctx: WorkerContext,
  payload: Record<string, unknown>,
  sha: unknown,
): Promise<WebhookHandlerResult> {
  const repository = payload.repository as { full_name?: unknown } | undefined
  if (!isSpecsRepository(ctx, repository?.full_name)) return ignored('not the specs repository')
  if (typeof sha !== 'string' || !/^[0-9a-f]{40}$/.test(sha)) return ignored('no commit sha')
  const rows = await listMergedDeploymentsByCommit(ctx.db, sha)
  if (rows.length === 0) return ignored(`no merged deployment with merge commit ${sha.slice(0, 12)}`)
  const results: string[] = []
  for (const row of rows) {
    const settled = await settleFromChecks(ctx, row)
    results.push(`deployment ${row.id} ${settled ?? 'still merged'}`)
  }
  return processed(results.join('; '))
}
