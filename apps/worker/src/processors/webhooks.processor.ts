import {
  classifyGithubError,
  githubErrorToAppError,
  isAppError,
  isHandledWebhook,
  redactSecrets,
  truncateMessage,
} from '@portico/core'
import { findWebhookDelivery, settleWebhookDelivery } from '@portico/db'
import { UnrecoverableError } from 'bullmq'
import type { ProcessorFactory } from '../context.js'
import { webhookHandlers } from '../webhooks/handlers/index.js'
import type { WebhookHandlerRegistry } from '../webhooks/types.js'
import { isOctokitRequestError } from './deploy.processor.js'

/** GitHub refusals a retry can fix; everything else GitHub says is permanent. */
const TRANSIENT_REFUSALS = new Set(['rate_limited', 'unavailable'])

/**
 * Builds the `webhooks` queue processor over a handler registry (the default one in production;
 * tests may pass their own). Processes one stored delivery by id: a delivery already settled is
 * skipped, so a job run twice changes nothing twice; the handler's outcome (`processed` /
 * `ignored`) or the failure is recorded on the delivery row.
 */
export function createWebhooksProcessor(
  handlers: WebhookHandlerRegistry = webhookHandlers,
): ProcessorFactory<'webhooks'> {
  return (ctx) => async (job) => {
    const { deliveryId } = job.data
    const delivery = await findWebhookDelivery(ctx.db, deliveryId)
    if (!delivery) return { skipped: 'delivery not found' }
    if (delivery.processed_at !== null) return { skipped: 'already processed', outcome: delivery.outcome }
    if (!isHandledWebhook(delivery.event, delivery.action)) {
      await settleWebhookDelivery(ctx.db, deliveryId, 'ignored', { result: 'not used' })
      return { outcome: 'ignored' }
    }
    const payload = (delivery.payload ?? {}) as Record<string, unknown>
    try {
      const result = await handlers[delivery.event](ctx, payload, delivery)
      await settleWebhookDelivery(ctx.db, deliveryId, result.outcome, { result: result.result })
      ctx.logger.info(
        { deliveryId, event: delivery.event, action: delivery.action, ...result },
        'webhook processed',
      )
      return result
    } catch (err) {
      const github = isOctokitRequestError(err)
      const transient = github ? TRANSIENT_REFUSALS.has(classifyGithubError(err).kind) : !isAppError(err)
      const appError = github ? githubErrorToAppError(err) : isAppError(err) ? err : undefined
      const message = truncateMessage(
        redactSecrets(appError ? `${appError.code}: ${appError.message}` : (err as Error).message),
        500,
      )
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
      ctx.logger.warn(
        { deliveryId, event: delivery.event, transient, err: { message } },
        'webhook processing failed',
      )
      if (!transient || lastAttempt) {
        await settleWebhookDelivery(ctx.db, deliveryId, 'failed', { error: message }).catch(() => {})
      }
      if (!transient) throw new UnrecoverableError(message)
      throw err
    }
  }
}

/** The `webhooks` queue processor with every handler of {@link webhookHandlers}. */
export const webhooksProcessor: ProcessorFactory<'webhooks'> = createWebhooksProcessor()
