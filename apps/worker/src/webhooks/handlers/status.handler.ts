import { ignored, type WebhookHandler } from '../types.js'
import { onCommitCheck } from './commit-checks.js'

/**
 * `status` (a commit status changed; no action): a pending status completes nothing.
 * https://docs.github.com/en/webhooks/webhook-events-and-payloads#status
 */
export const statusHandler: WebhookHandler = async (ctx, payload) => {
  if (payload.state === 'pending') return ignored('pending status')
  return onCommitCheck(ctx, payload, payload.sha)
}
