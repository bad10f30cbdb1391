import { Type } from '@sinclair/typebox'

/** Headers GitHub sends with every delivery (others are accepted and ignored). */
export const WebhookHeaders = Type.Object(
  {
    'x-github-event': Type.Optional(Type.String({ description: 'Event name, e.g. pull_request.' })),
    'x-github-delivery': Type.Optional(
      Type.String({ description: 'Unique delivery id (a GUID); GitHub’s redeliveries keep it.' }),
    ),
    'x-github-hook-id': Type.Optional(Type.String({ description: 'Id of the hook that sent it.' })),
    'x-hub-signature-256': Type.Optional(
      Type.String({ description: '`sha256=` + HMAC-SHA256 of the raw body with the webhook secret.' }),
    ),
  },
  { additionalProperties: true },
)

/** The answer to an accepted delivery. */
export const WebhookAccepted = Type.Object({
  delivery_id: Type.String(),
  status: Type.Union([Type.Literal('queued'), Type.Literal('duplicate'), Type.Literal('ignored')], {
    description:
      'queued: stored and queued for processing; duplicate: this X-GitHub-Delivery was received before (nothing is done twice); ignored: an event or action Portico does not use.',
  }),
})

/** The delivery body: kept as raw bytes until its signature is verified, then parsed. */
export const WebhookBody = Type.Unknown({
  description:
    'The event payload as GitHub sends it: JSON (`application/json`) or `payload=<json>` (`application/x-www-form-urlencoded`), at most 25 MB; verified over its exact bytes before it is parsed.',
})
