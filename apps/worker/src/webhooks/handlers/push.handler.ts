import { refreshConnectionsOfRepository } from '@portico/db'
import { ignored, processed, type WebhookHandler } from '../types.js'

/**
 * `push` to a connected repository's default branch → each connection to it (by GitHub's
 * repository id) is refreshed, debounced: a burst of pushes makes one refresh, and a push while a
 * refresh runs queues one more after it. Other refs (feature branches, tags) change nothing.
 * https://docs.github.com/en/webhooks/webhook-events-and-payloads#push
 */
export const pushHandler: WebhookHandler = async (ctx, payload) => {
  const repository = payload.repository as { id?: unknown; default_branch?: unknown } | undefined
  const id = repository?.id
  if (typeof id !== 'number' || !Number.isSafeInteger(id)) return ignored('no repository id')
  const branch = repository?.default_branch
  if (typeof branch !== 'string' || payload.ref !== `refs/heads/${branch}`) {
    return ignored(`not the default branch (${String(payload.ref)})`)
  }
  if (payload.deleted === true) return ignored('the default branch was deleted')
  const results = await refreshConnectionsOfRepository(
    {
      db: ctx.db,
      enqueue: (data, opts) => ctx.queues.clone.add('clone', data, opts).then((job) => String(job.id)),
      deduplicatedJobId: (dedupId) => ctx.queues.clone.getDeduplicationJobId(dedupId),
    },
    id,
  )
  if (results.length === 0) return ignored(`no refreshable connection to repository ${id}`)
  return processed(results.map((r) => `${r.connectionId} ${r.outcome}`).join(', '))
}
