import { type TSchema, Type } from '@sinclair/typebox'

/** A timestamp: a Date in handlers, an ISO string on the wire. */
export const Timestamp = Type.Unsafe<Date | string>({ type: 'string', format: 'date-time' })

/**
 * The one error body of every route: `error` and `message` carry the same human sentence;
 * `code` is stable for programs. Some errors add fields (a deployment id, a reset time).
 */
export const ErrorBody = Type.Object(
  {
    statusCode: Type.Integer(),
    code: Type.String(),
    error: Type.String(),
    message: Type.String(),
  },
  { additionalProperties: true },
)

/** Response schemas for the error statuses a route can answer, all {@link ErrorBody}. */
export function errorResponses(...statuses: number[]): Record<number, TSchema> {
  return Object.fromEntries(statuses.map((s) => [s, ErrorBody]))
}
