import { failConnectionsByRepoId, renameConnectionsByRepoId } from '@portico/db'
import { ignored, processed, type WebhookHandler } from '../types.js'

/** Stable code of a connection whose repository GitHub reported deleted. */
export const REPOSITORY_DELETED = 'REPOSITORY_DELETED'

/**
 * `repository` renamed / transferred: connections to that repository (by GitHub's id) take its
 * new canonical `owner/name`; deleted: they fail with REPOSITORY_DELETED and their token is wiped.
 * https://docs.github.com/en/webhooks/webhook-events-and-payloads#repository
 */
export const repositoryHandler: WebhookHandler = async (ctx, payload) => {
  const repository = payload.repository as { id?: unknown; full_name?: unknown } | undefined
  const id = repository?.id
  if (typeof id !== 'number' || !Number.isSafeInteger(id)) return ignored('no repository id')
  if (payload.action === 'deleted') {
    const failed = await failConnectionsByRepoId(ctx.db, id, {
      code: REPOSITORY_DELETED,
      message: 'The repository was deleted on GitHub. Connect another repository.',
    })
    return processed(`${failed} connection(s) failed: repository ${id} deleted`)
  }
  const fullName = repository?.full_name
  if (typeof fullName !== 'string' || !/^[A-Za-z0-9-]+\/[A-Za-z0-9._-]+$/.test(fullName))
    return ignored('no repository name')
  const renamed = await renameConnectionsByRepoId(ctx.db, id, fullName)
  return processed(`${renamed} connection(s) now name ${fullName}`)
}
