import { Type } from '@sinclair/typebox'

/**
 * The one error body of every failure (see plugins/app/errors.ts): `error` and `message` carry
 * the same human sentence; `code` is stable for programs. Some errors add fields (a deployment
 * id, `retry_after`, a `hint`; `requestId` on 5xx).
 */
export const ErrorBody = Type.Object(
  {
    statusCode: Type.Integer({ minimum: 400, maximum: 599 }),
    code: Type.String({ description: 'Stable machine-readable code, e.g. PROJECT_NOT_FOUND.' }),
    error: Type.String({ description: 'The same human sentence as `message` (what the frontend shows).' }),
    message: Type.String({ description: 'A human sentence; a generic one on 5xx, never internals.' }),
  },
  { title: 'ErrorBody', additionalProperties: true },
)

/** A redirect (the Location header says where); no body. */
export const Redirect = Type.Null({ description: 'Redirect; see the Location header.' })

/** An empty answer (204). */
export const NoContent = Type.Null({ description: 'No content.' })
