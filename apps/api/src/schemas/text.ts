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

/** Text with something in it besides white space, and no NUL: a display name. */
export const NAME_PATTERN = '^(?=[^\\u0000]*\\S)[^\\u0000]*$'

/**
 * A tenant's or project's display name: {@link Text} that is not blank ("   " was accepted). No
 * `minLength`: the pattern refuses "" too, with the same sentence instead of Ajv's length wording.
 */
export const Name = (options: Omit<StringOptions, 'pattern'> = {}): TString =>
  Type.String({ maxLength: 200, ...options, pattern: NAME_PATTERN })

/** A tenant or project slug: lower-case, URL-safe, 2-63 characters (a DNS label's length). */
export const SLUG_PATTERN = '^[a-z][a-z0-9-]{1,62}$'

export const Slug = (options: Omit<StringOptions, 'pattern'> = {}): TString =>
  Type.String({
    description: 'Lower-case letters, digits and dashes; 2-63 characters, starting with a letter.',
    ...options,
    pattern: SLUG_PATTERN,
  })

/**
 * What each request `pattern` means, in words: a validation error names the rule instead of
 * printing the regular expression ("must match pattern ^[a-z]…" told a first-time user little).
 */
export const PATTERN_PHRASES: Readonly<Record<string, string>> = {
  [NO_NUL_PATTERN]: 'must not contain a NUL character',
  [SLUG_PATTERN]: 'must be 2-63 lower-case letters, digits or dashes, starting with a letter',
  [NAME_PATTERN]: 'must not be blank or contain a NUL character',
}
