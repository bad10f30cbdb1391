import type { WebhookEventName } from '@portico/core'
import type { WebhookDeliveryRow } from '@portico/db'
import type { WorkerContext } from '../context.js'

/** What a handler did with a delivery: stored on the delivery row (`outcome`, `result`). */
export interface WebhookHandlerResult {
  /** `processed`: it changed or checked something; `ignored`: nothing for Portico in it. */
  outcome: 'processed' | 'ignored'
  /** A few words for the delivery log, e.g. `deployment 1f… merged`. */
  result: string
}

/**
 * Handles one stored delivery. Must be idempotent: the same delivery may run twice (a job
 * redelivered after a crash), so every change it makes is conditional on the prior state.
 * Throwing retries the job (transient failures) or, with `UnrecoverableError`, fails it.
 */
export type WebhookHandler = (
  ctx: WorkerContext,
  payload: Record<string, unknown>,
  delivery: WebhookDeliveryRow,
) => Promise<WebhookHandlerResult>

/** One handler per handled event (`WEBHOOK_EVENT_ACTIONS` in @portico/core). */
export type WebhookHandlerRegistry = Record<WebhookEventName, WebhookHandler>

export const ignored = (result: string): WebhookHandlerResult => ({ outcome: 'ignored', result })
export const processed = (result: string): WebhookHandlerResult => ({ outcome: 'processed', result })
