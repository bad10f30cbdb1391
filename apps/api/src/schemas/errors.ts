import { Type } from '@sinclair/typebox'

/** The one error body of every failure (see plugins/app/errors.ts). */
export const ErrorBody = Type.Object(
  {
    statusCode: Type.Integer({ minimum: 400, maximum: 599 }),
    code: Type.String({ description: 'Stable machine-readable code, e.g. PROJECT_NOT_FOUND.' }),
    error: Type.String({ description: 'HTTP reason phrase.' }),
    message: Type.String({ description: 'A human sentence; never internals on 5xx.' }),
  },
  { title: 'ErrorBody' },
)

/** A redirect (the Location header says where); no body. */
export const Redirect = Type.Null({ description: 'Redirect; see the Location header.' })

/** An empty answer (204). */
export const NoContent = Type.Null({ description: 'No content.' })
