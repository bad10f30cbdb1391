import { redactFieldName } from '@portico/core'
import type { TSchema } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { PATTERN_PHRASES } from './text.js'
import { unionBranches } from './union-branches.js'

/** One of Ajv's errors, as Fastify attaches them to a validation error (`error.validation`). */
export interface ValidationEntry {
  keyword?: string
  instancePath?: string
  schemaPath?: string
  params?: Record<string, unknown>
  message?: string
}

/** A Fastify validation error: Ajv's errors and where they were found (body, querystring…). */
export interface ValidationFailure {
  message?: unknown
  validation?: ValidationEntry[]
  validationContext?: string
}

/** Ajv's type names in words ("must be a whole number", not "must be integer"). */
const TYPE_WORDS: Readonly<Record<string, string>> = {
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  object: 'a JSON object',
  array: 'a list',
  null: 'null',
}
const FORMAT_WORDS: Readonly<Record<string, string>> = {
  uri: 'a URL',
  'date-time': 'a date and time (ISO 8601)',
  date: 'a date (YYYY-MM-DD)',
  uuid: 'a UUID',
  email: 'an email address',
}
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

/** The types a `type` error names (Ajv gives one name, a list, or a comma-separated string). */
const typesOf = (e: ValidationEntry): string[] =>
  (Array.isArray(e.params?.type) ? e.params.type : String(e.params?.type).split(',')).map(String)

/**
 * The values an enum-like field takes, in words: "must be one of: owner, admin, member"; a null
 * among them comes last, as the type words say it ("must be one of: new, edit or null").
 */
function allowedPhrase(values: readonly unknown[]): string {
  // Strings as they are; anything else (a number, an object) as JSON, never "[object Object]".
  const named = values.filter((v) => v !== null).map((v) => (typeof v === 'string' ? v : JSON.stringify(v)))
  const orNull = named.length < values.length ? ' or null' : ''
  return named.length === 1
    ? `must be ${String(named[0])}${orNull}`
    : `must be one of: ${named.join(', ')}${orNull}`
}

/**
 * The `enum` of the schema at `schemaPath` (`#/properties/color/type` names the schema at
 * `#/properties/color`), looked up in the route's schema for the part the error is about;
 * undefined when there is none (no request, a path the route's schema does not have).
 */
function enumAt(
  schemaPath: string | undefined,
  err: ValidationFailure,
  request: FastifyRequest | undefined,
): unknown[] | undefined {
  if (!schemaPath?.startsWith('#/')) return undefined
  const schemas = request?.routeOptions.schema as Record<string, unknown> | undefined
  let node: unknown =
    err.validationContext === 'querystring'
      ? (schemas?.querystring ?? schemas?.query)
      : schemas?.[String(err.validationContext)]
  for (const key of schemaPath.slice(2).split('/').filter(Boolean)) {
    if (typeof node !== 'object' || node === null) return undefined
    node = (node as Record<string, unknown>)[key.replace(/~1/g, '/').replace(/~0/g, '~')]
  }
  const values = (node as { enum?: unknown } | undefined)?.enum
  return Array.isArray(values) && values.some((v) => v !== null) ? values : undefined
}

/** The path of the schema a keyword's error is about: `#/properties/role` for `#/properties/role/type`. */
const schemaOf = (e: ValidationEntry) => e.schemaPath?.slice(0, e.schemaPath.lastIndexOf('/'))

/**
 * The values an enum-like value takes when `e` is about it: an `enum` keyword whose `type` the
 * value is not of (`{"type": "string", "enum": [...]}` given 5: Ajv reports the type alone), or
 * a union of such values and literals (TypeBox's `Type.Union` of `Type.Literal`, `Type.Enum`),
 * sent a value of another type (`{"role":5}`) or another string. Ajv gives a union one error
 * per branch: a literal's `const` (after its `type` error for a value of another type), an
 * `enum`'s own or its `type` error, a `null` branch's `type` error. Undefined when `e` is about
 * anything else, or a branch of its union is (an object, a string of a pattern).
 */
function allowedValues(
  e: ValidationEntry,
  err: ValidationFailure,
  request: FastifyRequest | undefined,
): unknown[] | undefined {
  const errors = err.validation ?? []
  // The outermost union the error is in: a union of unions names every branch's values.
  let union: ValidationEntry | undefined
  for (const u of errors) {
    if (u.keyword !== 'anyOf' || u.instancePath !== e.instancePath) continue
    if (!e.schemaPath?.startsWith(`${u.schemaPath}/`)) continue
    if (!union || (u.schemaPath?.length ?? 0) < (union.schemaPath?.length ?? 0)) union = u
  }
  if (!union) return e.keyword === 'type' ? enumAt(schemaOf(e), err, request) : undefined
  // An `enum` beside the union (`{"anyOf": [{"type": "string"}, {"type": "null"}], "enum": [...]}`).
  const outer = enumAt(schemaOf(union), err, request)
  if (outer) return outer
  const values = unionValues(String(union.schemaPath), union.instancePath, err, request)
  return values?.some((v) => v !== null) ? [...new Set(values)] : undefined
}

/**
 * The values the union at `unionPath` (an `anyOf`'s schema path) takes, from its branches' errors;
 * undefined when a branch is anything but literals, enums, null or such a union itself.
 */
function unionValues(
  unionPath: string,
  instancePath: string | undefined,
  err: ValidationFailure,
  request: FastifyRequest | undefined,
): unknown[] | undefined {
  const prefix = `${unionPath}/`
  const branches = new Map<string, ValidationEntry[]>()
  for (const b of err.validation ?? []) {
    if (!b.schemaPath?.startsWith(prefix)) continue
    if (b.instancePath !== instancePath) return undefined
    const index = b.schemaPath.slice(prefix.length).split('/')[0] ?? ''
    branches.set(index, [...(branches.get(index) ?? []), b])
  }
  const values: unknown[] = []
  for (const [index, branchErrors] of branches) {
    const nested = `${prefix}${index}/anyOf`
    if (branchErrors.some((b) => b.keyword === 'anyOf' && b.schemaPath === nested)) {
      const inner =
        enumAt(`${prefix}${index}`, err, request) ?? unionValues(nested, instancePath, err, request)
      if (!inner) return undefined
      values.push(...inner)
      continue
    }
    const literal = branchErrors.find((b) => b.keyword === 'const')
    const listed = branchErrors.find((b) => b.keyword === 'enum')?.params?.allowedValues
    const types = branchErrors.every((b) => b.keyword === 'type') ? branchErrors.flatMap(typesOf) : []
    const enumerated = Array.isArray(listed)
      ? listed
      : types.length
        ? enumAt(`${prefix}${index}`, err, request)
        : undefined
    if (literal) values.push(literal.params?.allowedValue)
    else if (enumerated) values.push(...enumerated)
    else if (types.length && types.every((t) => t === 'null')) values.push(null)
    else return undefined
  }
  return values
}

/**
 * A validation error's rule in words, for the keywords our schemas use; undefined for others
 * (Ajv's own message is used then). A new user's trial: "must be string" and "must NOT have more
 * than 200 characters" read as a validator's output next to the app's sentences.
 */
function rulePhrase(e: ValidationEntry): string | undefined {
  const p = e.params ?? {}
  const limit = Number(p.limit)
  switch (e.keyword) {
    case 'type':
      return `must be ${typesOf(e)
        .map((t) => TYPE_WORDS[t] ?? t)
        .join(' or ')}`
    case 'pattern':
      return PATTERN_PHRASES[String(p.pattern)]
    case 'maxLength':
      return `must be at most ${plural(limit, 'character')} long`
    case 'minLength':
      return limit === 1 ? 'must not be empty' : `must be at least ${plural(limit, 'character')} long`
    case 'maximum':
      return `must be at most ${limit}`
    case 'minimum':
      return `must be at least ${limit}`
    case 'exclusiveMaximum':
      return `must be less than ${limit}`
    case 'exclusiveMinimum':
      return `must be more than ${limit}`
    case 'maxItems':
      return `must have at most ${plural(limit, 'item')}`
    case 'minItems':
      return limit === 1 ? 'must not be empty' : `must have at least ${plural(limit, 'item')}`
    case 'maxProperties':
      return `must have at most ${plural(limit, 'field')}`
    case 'format':
      return `must be ${FORMAT_WORDS[String(p.format)] ?? `a valid ${String(p.format)}`}`
    case 'enum':
      return Array.isArray(p.allowedValues) ? allowedPhrase(p.allowedValues) : undefined
    default:
      return undefined
  }
}

/**
 * The branches of a route's body when the union an error is about is the body itself (a PAT or
 * an App connection), with how many of the body's fields each takes; else undefined.
 */
function bodyUnionBranches(
  request: FastifyRequest | undefined,
  err: ValidationFailure,
  union: ValidationEntry,
) {
  if (!request || err.validationContext !== 'body' || union.instancePath !== '') return undefined
  const schema = request.routeOptions.schema?.body as TSchema | undefined
  if (!Array.isArray(schema?.anyOf)) return undefined
  const body = request.body
  // Not an object at all: the validator's "must be a JSON object" says it best.
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined
  const keys = Object.keys(body)
  return unionBranches(schema).map(({ schema: branch, fields }) => ({
    branch,
    fields: keys.filter((k) => fields.has(k)).length,
  }))
}

/**
 * The error to report. For a value that matched no branch of a union of objects (Ajv lists one
 * error per branch, then the `anyOf`), the branch's error that reached deepest into the value:
 * `{"installation_id": 1, "repository_id": "7"}` is an App connection with a wrong id
 * ("body.repository_id must be a whole number"), not a PAT connection without `repo_url`. When
 * several reach as deep, the branch whose fields the body uses most: `{"installation_id": 1}`
 * lacks `repository_id`, not `repo_url` (a new user's example).
 */
function closestBranchError(
  err: ValidationFailure,
  request: FastifyRequest | undefined,
): ValidationEntry | undefined {
  const errors = err.validation ?? []
  const union = errors.find((e) => e.keyword === 'anyOf')
  if (!union?.schemaPath) return errors[0]
  const prefix = `${union.schemaPath}/`
  const branchErrors = errors.filter((e) => e !== union && e.schemaPath?.startsWith(prefix))
  const depth = (e: ValidationEntry) => (e.instancePath ?? '').split('/').length
  const used = bodyUnionBranches(request, err, union)
  const fieldsUsed = (e: ValidationEntry) =>
    used?.[Number(e.schemaPath?.slice(prefix.length).split('/')[0])]?.fields ?? 0
  return (
    branchErrors.reduce<ValidationEntry | undefined>(
      (best, e) =>
        best === undefined ||
        depth(e) > depth(best) ||
        (depth(e) === depth(best) && fieldsUsed(e) > fieldsUsed(best))
          ? e
          : best,
      undefined,
    ) ?? errors[0]
  )
}

/**
 * A body that uses no field of any branch of its union (`{}`): what each kind of request needs
 * ("body must have repo_url and pat, or installation_id and repository_id"); else undefined.
 */
function unionAlternatives(err: ValidationFailure, request: FastifyRequest | undefined): string | undefined {
  const union = (err.validation ?? []).find((e) => e.keyword === 'anyOf')
  const used = union && bodyUnionBranches(request, err, union)
  if (!used || used.some((b) => b.fields > 0)) return undefined
  const kinds = used.filter((b) => b.branch.type === 'object' && b.branch.required?.length)
  if (kinds.length < 2) return undefined
  return `body must have ${kinds.map((b) => b.branch.required?.join(' and ')).join(', or ')}`
}

/**
 * The sentence for a schema validation error: the offending field and its rule in words
 * ("body.repo_url is required", "body.name must be at most 200 characters long").
 */
export function validationMessage(err: ValidationFailure, request?: FastifyRequest): string {
  const first = closestBranchError(err, request)
  if (!first) return String(err.message ?? 'Invalid request')
  const alternatives = unionAlternatives(err, request)
  if (alternatives) return alternatives
  const missing = first.params?.missingProperty
  // A JSON pointer's segments, decoded (RFC 6901: ~1 is "/", ~0 is "~") and, where a key is the
  // caller's own (a map's), made safe to echo like any field name.
  const where = [
    err.validationContext ?? 'request',
    ...(first.instancePath ?? '')
      .split('/')
      .filter(Boolean)
      .map((segment) => redactFieldName(segment.replace(/~1/g, '/').replace(/~0/g, '~'))),
  ]
  if (typeof missing === 'string') return `${[...where, missing].join('.')} is required`
  const extra = first.params?.additionalProperty
  if (first.keyword === 'additionalProperties' && typeof extra === 'string')
    // Redacted here too (the unknown-fields hook already did it for the top level's keys): a
    // closed object deeper in a body reports its own unknown keys.
    return `${where.join('.')} has a field this route does not take: ${JSON.stringify([...redactFieldName(extra)].slice(0, 100).join(''))}`
  const errors = err.validation ?? []
  // A union of literals or an enum, sent a value of another type (`{"role":5}`) or another
  // string: the values it takes, not "must be a string".
  const allowed = allowedValues(first, err, request)
  if (allowed) return `${where.join('.')} ${allowedPhrase(allowed)}`
  // A value of none of its union's types (a string where a JSON object or null goes): one type
  // error per branch; name every type (a review: `…/github/refresh` was told "must be a JSON object").
  const union = errors.find((e) => e.keyword === 'anyOf')
  if (first.keyword === 'type' && union && union.instancePath === first.instancePath) {
    const types = new Set(
      errors.filter((e) => e.keyword === 'type' && e.instancePath === first.instancePath).flatMap(typesOf),
    )
    return `${where.join('.')} ${rulePhrase({ ...first, params: { type: [...types] } })}`
  }
  return `${where.join('.')} ${rulePhrase(first) ?? first.message ?? 'is invalid'}`
}
