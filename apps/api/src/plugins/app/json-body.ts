import { AppError } from '@portico/core'
import { parse as parseContentType } from 'content-type'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import sjson from 'secure-json-parse'

/** RFC 8259 §8.1: JSON exchanged between systems is UTF-8; `fatal` refuses bytes that are not. */
const utf8 = new TextDecoder('utf-8', { fatal: true })
/** `"\ud800"`: the only way a lone surrogate gets into text that decoded as UTF-8. */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/
/** A code unit of a surrogate pair standing alone (the `u` flag reads well-formed pairs whole). */
const LONE_SURROGATE = /\p{Surrogate}/u
/** `__proto__` keys and `constructor.prototype` chains (Fastify's own default, `onProtoPoisoning: 'error'`). */
const POISONING = { protoAction: 'error', constructorAction: 'error' } as const
/** Text without any of these cannot hold either key, even escaped: the scan is skipped. */
const MAYBE_POISONED = /proto|constructor|\\u/

/**
 * Deepest nesting of arrays and objects a body may have: Ruby's `JSON.parse` default
 * (`max_nesting: 100`). Deeper bodies are refused before anything recursive (`JSON.stringify`,
 * a reviver, validation) can exhaust the stack on them.
 */
export const MAX_JSON_DEPTH = 100

/** Whether `text` nests arrays and objects deeper than `max` (brackets inside strings do not count). */
function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true
    } else if (c === 0x7d || c === 0x5d) depth--
  }
  return false
}

const CHARSET_PARAMETER = /;\s*charset\s*=/gi

const invalidJson = (reason: string) => new AppError(400, 'INVALID_JSON', reason)

/**
 * Parses a request body sent as `application/json`: UTF-8 JSON text, as Fastify's default parser
 * does, but every refusal has its own code and sentence, and nothing is silently changed.
 *
 * @param body the raw body bytes (at most the route's `bodyLimit`).
 * @param contentType the request's `content-type` header; a `charset` other than UTF-8 is refused.
 * @returns the parsed value, any JSON value (schemas decide what a route takes); `undefined` for
 *   an empty body, as if none was sent (`fetch` with a JSON content-type and no body).
 * @throws AppError 415 `UNSUPPORTED_MEDIA_TYPE` for another charset or more than one; 400 `INVALID_JSON` for bytes
 *   that are not UTF-8, a syntax error or an escaped lone surrogate (`"\ud800"`, which Postgres
 *   and UTF-8 cannot hold: it would be stored as U+FFFD); 400 `JSON_TOO_DEEP` beyond
 *   {@link MAX_JSON_DEPTH}; 400 `UNSAFE_JSON_KEY` for a `__proto__` key or a `constructor` key
 *   holding `prototype` (prototype poisoning).
 */
export function parseJsonBody(body: Buffer, contentType: string | undefined): unknown {
  // Parsers disagree on which of two charsets counts (this one reads the first, Fastify's
  // matcher the last): a header naming more than one is refused rather than guessed.
  if ((contentType?.match(CHARSET_PARAMETER)?.length ?? 0) > 1) {
    throw new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', 'The content-type names more than one charset.')
  }
  const charset = parseContentType(contentType ?? '').parameters.charset?.toLowerCase()
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new AppError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      `Request bodies must be UTF-8 JSON; charset=${charset.slice(0, 40)} is not supported.`,
    )
  }
  if (body.length === 0) return undefined
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    throw invalidJson('The request body is not valid UTF-8.')
  }
  if (text.length > MAX_JSON_DEPTH && nestsDeeperThan(text, MAX_JSON_DEPTH)) {
    throw new AppError(
      400,
      'JSON_TOO_DEEP',
      `The request body nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep.`,
    )
  }
  let lone = false
  let value: unknown
  try {
    value = SURROGATE_ESCAPE.test(text)
      ? JSON.parse(text, (key, v) => {
          if (LONE_SURROGATE.test(key) || (typeof v === 'string' && LONE_SURROGATE.test(v))) lone = true
          return v
        })
      : JSON.parse(text)
  } catch {
    throw invalidJson('The request body is not valid JSON.')
  }
  if (lone) {
    throw invalidJson(
      'The request body holds an escaped lone surrogate (such as "\\ud800"), which is not text.',
    )
  }
  if (value !== null && typeof value === 'object' && MAYBE_POISONED.test(text)) {
    try {
      sjson.scan(value, POISONING)
    } catch {
      throw new AppError(
        400,
        'UNSAFE_JSON_KEY',
        'The request body uses "__proto__" or "constructor.prototype" as a key, which is refused.',
      )
    }
  }
  return value
}

/** A content-type parser for `application/json` built on {@link parseJsonBody}. */
function jsonBodyParser(
  request: FastifyRequest,
  body: Buffer,
  done: (err: Error | null, value?: unknown) => void,
) {
  try {
    done(null, parseJsonBody(body, request.headers['content-type']))
  } catch (err) {
    done(err as Error, undefined)
  }
}

/**
 * Request bodies for every route: `application/json` through {@link parseJsonBody}; no
 * `text/plain` parser, so a text body is 415 like any other type a route does not take. Routes
 * with their own contract (`POST /api/pod`, webhooks) replace these in their own context.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    fastify.removeContentTypeParser(['application/json', 'text/plain'])
    fastify.addContentTypeParser('application/json', { parseAs: 'buffer' }, jsonBodyParser)
  },
  { name: 'json-body' },
)
