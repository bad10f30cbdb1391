import { failAppConnections } from '@portico/db'
import { APP_ACCESS_REVOKED, APP_ACCESS_REVOKED_MESSAGE } from '../../clone/app-access-revoked.js'
import { ignored, processed, type WebhookHandler } from '../types.js'

/**
 * `installation` deleted or suspended → every live connection through that installation fails
 * with APP_ACCESS_REVOKED (no clone or refresh could mint a token for it any more). `created` and
 * `unsuspend` change nothing: a failed connection comes back through a refresh.
 * https://docs.github.com/en/webhooks/webhook-events-and-payloads#installation
 */
export const installationHandler: WebhookHandler = async (ctx, payload) => {
  const action = String(payload.action ?? '')
  if (action !== 'deleted' && action !== 'suspend') return ignored(`installation ${action}: nothing to do`)
  const id = (payload.installation as { id?: unknown } | undefined)?.id
  if (typeof id !== 'number' || !Number.isSafeInteger(id)) return ignored('no installation id')
  const failed = await failAppConnections(ctx.db, id, {
    code: APP_ACCESS_REVOKED,
    message: APP_ACCESS_REVOKED_MESSAGE,
  })
  return processed(`${failed} connection(s) failed: installation ${id} ${action}`)
}
