import { type TSchema, Type } from '@sinclair/typebox'
import { ErrorBody } from './errors.js'

/** A timestamp: a Date in handlers, an ISO string on the wire. */
export const Timestamp = Type.Unsafe<Date | string>({ type: 'string', format: 'date-time' })

/** Response schemas for the error statuses a route can answer, all {@link ErrorBody}. */
export function errorResponses(...statuses: number[]): Record<number, TSchema> {
  return Object.fromEntries(statuses.map((s) => [s, ErrorBody]))
}
