import type { Executor } from './db.js'
import type { NewWebhookDelivery, WebhookDeliveryRow, WebhookOutcome } from './schema.js'

/** Outcome of {@link recordWebhookDelivery}. */
export interface RecordedDelivery {
  /** The stored row (the earlier one for a duplicate). */
  row: WebhookDeliveryRow
  /** True when a row with this `delivery_id` already existed (a redelivery). */
  duplicate: boolean
}

/**
 * Stores a verified delivery once: a second call with the same `delivery_id` (GitHub's
 * redeliveries keep `X-GitHub-Delivery`) inserts nothing and returns the existing row.
 */
export async function recordWebhookDelivery(
  db: Executor,
  values: NewWebhookDelivery,
): Promise<RecordedDelivery> {
  const inserted = await db
    .insertInto('webhook_deliveries')
    .values(values)
    .onConflict((oc) => oc.column('delivery_id').doNothing())
    .returningAll()
    .executeTakeFirst()
  if (inserted) return { row: inserted, duplicate: false }
  const existing = await findWebhookDelivery(db, values.delivery_id)
  if (!existing) throw new Error(`webhook delivery ${values.delivery_id} vanished`)
  return { row: existing, duplicate: true }
}

/** A delivery by its `X-GitHub-Delivery` id. */
export async function findWebhookDelivery(
  db: Executor,
  deliveryId: string,
): Promise<WebhookDeliveryRow | undefined> {
  return db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('delivery_id', '=', deliveryId)
    .executeTakeFirst()
}

/**
 * Records how processing ended. Only the first settlement counts (`processed_at` still null), so
 * a job delivered twice cannot overwrite the first outcome; returns whether this call settled it.
 */
export async function settleWebhookDelivery(
  db: Executor,
  deliveryId: string,
  outcome: Exclude<WebhookOutcome, 'queued'>,
  detail: { result?: string | null; error?: string | null } = {},
): Promise<boolean> {
  const res = await db
    .updateTable('webhook_deliveries')
    .set({
      outcome,
      processed_at: new Date(),
      result: detail.result?.slice(0, 500) ?? null,
      error: detail.error?.slice(0, 500) ?? null,
    })
    .where('delivery_id', '=', deliveryId)
    .where('processed_at', 'is', null)
    .executeTakeFirst()
  return res.numUpdatedRows > 0n
}

/** Deletes deliveries received before `before` (bounded retention); returns how many. */
export async function pruneWebhookDeliveries(db: Executor, before: Date): Promise<number> {
  const res = await db.deleteFrom('webhook_deliveries').where('received_at', '<', before).executeTakeFirst()
  return Number(res.numDeletedRows)
}
