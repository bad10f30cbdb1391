import { type StringOptions, type TString, Type } from '@sinclair/typebox'

/**
 * No NUL character: PostgreSQL cannot store U+0000 in `text`, and no name, login, message, path or
 * query value needs one.
 */
export const NO_NUL_PATTERN = '^[^\\u0000]*$'

/**
 * The one string schema for request input (body, params, query): a string without NUL, so such
 * text is refused with 400 VALIDATION_ERROR by the schema instead of failing in Postgres (500).
 * Options (maxLength, minLength, description…) pass through; fields with their own stricter
 * `pattern` (slugs) keep it.
 */
export const Text = (options: Omit<StringOptions, 'pattern'> = {}): TString =>
  Type.String({ ...options, pattern: NO_NUL_PATTERN })
