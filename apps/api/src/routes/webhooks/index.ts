import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Webhooks } from '@octokit/webhooks'
import { AppError, isHandledWebhook, webhookJobId, webhookJobOptions } from '@portico/core'
import { recordWebhookDelivery } from '@portico/db'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { errorResponses } from '../../schemas/common.js'
import { WebhookAccepted, WebhookBody, WebhookHeaders } from '../../schemas/webhooks.js'

/** GitHub caps webhook payloads at 25 MB (https://docs.github.com/en/webhooks/webhook-events-and-payloads). */
export const WEBHOOK_BODY_LIMIT = 25 * 1024 * 1024
/** A GUID is 36 characters; anything much longer is not GitHub's. */
const DELIVERY_ID_PATTERN = /^[A-Za-z0-9-]{1,100}$/
const EVENT_PATTERN = /^[a-z_]{1,100}$/

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
/** GitHub's `X-Hub-Signature-256`: `sha256=` and the HMAC-SHA256 of the body in hex. */
const SIGNATURE_PATTERN = /^sha256=[0-9a-f]{64}$/i
const invalidSignature = () =>
  new AppError(
    401,
    'INVALID_SIGNATURE',
    'The webhook signature (X-Hub-Signature-256) is missing or does not match the configured secret.',
  )
const invalidWebhook = (why: string) =>
  new AppError(400, 'INVALID_WEBHOOK', `Invalid webhook delivery: ${why}.`)

const header = (request: FastifyRequest, name: string): string | undefined => {
  const value = request.headers[name]
  return typeof value === 'string' ? value : undefined
}

/** The JSON payload of a delivery: `application/json`, or `payload=` of a form-encoded one (hook `content_type: form`). */
function parsePayload(request: FastifyRequest, raw: Buffer): Record<string, unknown> {
  const type = String(request.headers['content-type'] ?? '').toLowerCase()
  let text = raw.toString('utf8')
  if (type.startsWith('application/x-www-form-urlencoded')) {
    text = new URLSearchParams(text).get('payload') ?? ''
  }
  let payload: unknown
  try {
    payload = JSON.parse(text)
  } catch {
    throw invalidWebhook('the body is not JSON')
  }
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload))
    throw invalidWebhook('the payload is not a JSON object')
  return storable(payload, 0) as Record<string, unknown>
}

/** NUL, and UTF-16 surrogates without their pair. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is exactly what jsonb refuses
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g

/** GitHub's payloads nest about ten levels; far deeper is not a delivery Portico can use. */
const MAX_PAYLOAD_DEPTH = 100

/**
 * A copy PostgreSQL's jsonb accepts: NUL and unpaired surrogates (valid in JSON text, refused by
 * jsonb; a commit message may hold them) become U+FFFD, in keys and values alike. Nesting past
 * {@link MAX_PAYLOAD_DEPTH} is refused with 400 INVALID_WEBHOOK rather than overflowing the stack.
 */
function storable(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return value.replace(UNSTORABLE, '\ufffd')
  if (value === null || typeof value !== 'object') return value
  if (depth >= MAX_PAYLOAD_DEPTH)
    throw invalidWebhook(`the payload nests deeper than ${MAX_PAYLOAD_DEPTH} levels`)
  if (Array.isArray(value)) return value.map((item) => storable(item, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value)) {
    // defineProperty: a `__proto__` key stays a key, as JSON.parse made it, not a prototype.
    Object.defineProperty(out, storable(key, depth) as string, {
      value: storable(item, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    })
  }
  return out
}

const idOf = (value: unknown): number | null => {
  const id = (value as { id?: unknown } | null | undefined)?.id
  return typeof id === 'number' && Number.isSafeInteger(id) && id > 0 ? id : null
}

/**
 * `POST /webhooks/github`: GitHub's deliveries (repository hooks or a GitHub App's webhook).
 * No session, CSRF or sign-in: the HMAC signature is the authentication. Order matters: 503
 * WEBHOOKS_NOT_CONFIGURED without a secret; the raw body (≤ 25 MB, else 413) is verified against
 * GITHUB_WEBHOOK_SECRET and GITHUB_WEBHOOK_SECRET_PREVIOUS before it is parsed or stored (401
 * INVALID_SIGNATURE); then stored once per `X-GitHub-Delivery` and queued (job data: the delivery
 * id). 202 `{ delivery_id, status }`; unknown events and actions are `ignored`, never a 4xx.
 * Signature scheme: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
 */
export default async function webhooksRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  const { config } = fastify
  const verifiers = [config.GITHUB_WEBHOOK_SECRET, config.GITHUB_WEBHOOK_SECRET_PREVIOUS]
    .filter((s): s is string => typeof s === 'string' && s.length > 0)
    .map((secret) => new Webhooks({ secret }))

  // The body stays raw bytes: the signature covers them exactly, and nothing is parsed before it
  // is verified. Scoped to this plugin only.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser(
    '*',
    { parseAs: 'buffer', bodyLimit: WEBHOOK_BODY_LIMIT },
    (_req, body, done) => done(null, body),
  )

  fastify.post(
    '/github',
    {
      bodyLimit: WEBHOOK_BODY_LIMIT,
      schema: {
        tags: ['webhooks'],
        summary: 'Receive a GitHub webhook delivery (signed with the webhook secret)',
        description:
          'Point a repository hook or a GitHub App webhook here with GITHUB_WEBHOOK_SECRET as its secret (see docs/webhooks.md).',
        headers: WebhookHeaders,
        body: WebhookBody,
        response: { 202: WebhookAccepted, ...errorResponses(400, 401, 413, 429, 503) },
      },
      // Fails before the body (up to 25 MB) is read when webhooks are off or the delivery is
      // not signed: only a signed one is worth reading to check its signature.
      onRequest: async (request) => {
        if (verifiers.length === 0) {
          throw new AppError(
            503,
            'WEBHOOKS_NOT_CONFIGURED',
            'Webhooks are not configured on this server (GITHUB_WEBHOOK_SECRET is not set).',
            { expose: true },
          )
        }
        const signature = header(request, 'x-hub-signature-256')
        if (!signature || !SIGNATURE_PATTERN.test(signature)) throw invalidSignature()
      },
    },
    async (request, reply) => {
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0)
      // Present and well-formed: checked in onRequest.
      const signature = header(request, 'x-hub-signature-256') as string
      // The signature covers the body's bytes, and @octokit/webhooks verifies text: only a body
      // that is UTF-8 turns into text with the same bytes (GitHub sends nothing else), so any
      // other body cannot be verified. A byte-order mark is kept as sent.
      let text: string
      try {
        text = UTF8.decode(raw)
      } catch {
        throw invalidSignature()
      }
      let verified = false
      for (const verifier of verifiers) {
        if (await verifier.verify(text, signature).catch(() => false)) {
          verified = true
          break
        }
      }
      if (!verified) throw invalidSignature()

      const deliveryId = header(request, 'x-github-delivery')
      const event = header(request, 'x-github-event')
      if (!deliveryId || !DELIVERY_ID_PATTERN.test(deliveryId))
        throw invalidWebhook('X-GitHub-Delivery is missing or malformed')
      if (!event || !EVENT_PATTERN.test(event)) throw invalidWebhook('X-GitHub-Event is missing or malformed')
      const payload = parsePayload(request, raw)
      const action = typeof payload.action === 'string' ? payload.action.slice(0, 100) : null
      const hookId = Number(header(request, 'x-github-hook-id'))
      const handled = isHandledWebhook(event, action)

      const { row, duplicate } = await recordWebhookDelivery(fastify.db, {
        delivery_id: deliveryId,
        event,
        action,
        hook_id: Number.isSafeInteger(hookId) && hookId > 0 ? hookId : null,
        installation_id: idOf(payload.installation),
        repository_id: idOf(payload.repository),
        payload: JSON.stringify(payload),
        ...(handled ? {} : { outcome: 'ignored' as const, processed_at: new Date(), result: 'not used' }),
      })
      reply.code(202)
      if (!handled) {
        return { delivery_id: deliveryId, status: duplicate ? ('duplicate' as const) : ('ignored' as const) }
      }
      // A redelivery of a delivery still waiting is queued again: the job id dedupes it while
      // the first job lives, and brings it back if the first enqueue failed.
      if (!duplicate || row.processed_at === null) {
        await fastify.enqueue(
          'webhooks',
          { deliveryId, requestId: request.id },
          webhookJobOptions(webhookJobId(deliveryId)),
        )
      }
      request.log.info({ deliveryId, event, action, duplicate }, 'webhook delivery received')
      return { delivery_id: deliveryId, status: duplicate ? ('duplicate' as const) : ('queued' as const) }
    },
  )
}
