import { failAppConnections } from '@portico/db'
import { APP_ACCESS_REVOKED, APP_ACCESS_REVOKED_MESSAGE } from '../../clone/app-access-revoked.js'
import { ignored, processed, type WebhookHandler } from '../types.js'

/**
 * `installation_repositories` removed → the live App connections to the removed repositories (by
 * GitHub's repository id, within that installation) fail with APP_ACCESS_REVOKED. `added` changes
 * nothing. https://docs.github.com/en/webhooks/webhook-events-and-payloads#installation_repositories
 */
export const installationRepositoriesHandler: WebhookHandler = async (ctx, payload) => {
  if (payload.action !== 'removed') return ignored(`installation_repositories ${String(payload.action)}`)
  const id = (payload.installation as { id?: unknown } | undefined)?.id
  if (typeof id !== 'number' || !Number.isSafeInteger(id)) return ignored('no installation id')
  const removed = Array.isArray(payload.repositories_removed) ? payload.repositories_removed : []
  const repoIds = removed
    .map((r) => (r as { id?: unknown }).id)
    .filter((r): r is number => typeof r === 'number' && Number.isSafeInteger(r))
  if (repoIds.length === 0) return ignored('no repository removed')
  const failed = await failAppConnections(
    ctx.db,
    id,
    { code: APP_ACCESS_REVOKED, message: APP_ACCESS_REVOKED_MESSAGE },
    repoIds,
  )
  return processed(
    `${failed} connection(s) failed: ${repoIds.length} repository(ies) left installation ${id}`,
  )
}
