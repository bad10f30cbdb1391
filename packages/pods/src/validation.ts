import { AppError, redactFieldName } from '@portico/core'

/** A pod is one customer in one environment. */
export interface PodRef {
  customer: string
  env: string
}

/** What a deploy writes into a spec. */
export interface SpecFields extends PodRef {
  instance_name: string
  waf_enabled: boolean
}

/**
 * A validated `POST /api/pod` body. `waf_enabled` is null when the body leaves it out: the pod
 * then keeps its current setting (false for a new pod), resolved before the deploy is queued.
 */
export interface DeployRequest extends Omit<SpecFields, 'waf_enabled'> {
  waf_enabled: boolean | null
  commit_message: string | null
  mode: 'new' | 'edit' | null
}

/** A deploy request whose `waf_enabled` is decided: what a deployment row records. */
export type ResolvedDeployRequest = DeployRequest & SpecFields

const BODY_FIELDS = new Set(['customer', 'env', 'spec', 'commit_message', 'mode'])
const SPEC_FIELDS = new Set(['instance_name', 'waf_enabled'])
/**
 * The first key of `value` not in `known`, quoted and cut for a message, a token-like one
 * redacted (a review: a token pasted as a key was echoed and logged); undefined when none.
 */
function unknownKey(value: Record<string, unknown>, known: Set<string>): string | undefined {
  const key = Object.keys(value).find((k) => !known.has(k))
  return key === undefined ? undefined : JSON.stringify([...redactFieldName(key)].slice(0, 100).join(''))
}

const NAME_PATTERN = /^[a-zA-Z0-9_-]+$/
const INSTANCE_PATTERN = /^[a-z0-9-]+$/
const COMMIT_MESSAGE_MAX = 500

const invalid = (message: string) => new AppError(400, 'VALIDATION_ERROR', message)

/**
 * Checks a customer or environment name: never a path separator or `..` (the names become path
 * segments in the specs repository; checked first, so traversal is named as such whatever
 * else is wrong), then 1–50 characters of `a-zA-Z0-9_-`. `label` is how the value is named in
 * messages ("customer", "environment"); the messages are those of the system Portico replaces.
 * A value of another JSON type (a number, true, a list) is told it must be a string (a new
 * user's trial: `"customer": 5` was told "customer must be 1-50 characters").
 */
export function validateName(value: unknown, label: 'customer' | 'environment'): string {
  if (typeof value !== 'string') throw invalid(`${label} must be a string of 1-50 characters`)
  if (value.includes('..') || value.includes('/') || value.includes('\\')) {
    throw invalid(`${label} contains path traversal attempt`)
  }
  if (value.length < 1 || value.length > 50) {
    throw invalid(`${label} must be 1-50 characters`)
  }
  if (!NAME_PATTERN.test(value)) {
    throw invalid(`${label} contains invalid characters (use a-z, A-Z, 0-9, -, _ only)`)
  }
  return value
}

/** Validates a pod's customer and environment (as path parameters or body fields). */
export function validatePodRef(customer: unknown, env: unknown): PodRef {
  return { customer: validateName(customer, 'customer'), env: validateName(env, 'environment') }
}

/**
 * Checks an instance name: 1–30 characters of `a-z0-9-`, not starting or ending with `-`. The
 * three messages are word for word those of the system Portico replaces (the frontend shows them);
 * a value of another JSON type is told it must be a string.
 */
export function validateInstanceName(value: unknown): string {
  if (typeof value !== 'string') throw invalid('instance_name must be a string of 1-30 characters')
  if (value.length < 1 || value.length > 30) {
    throw invalid('instance_name must be 1-30 characters')
  }
  if (!INSTANCE_PATTERN.test(value)) {
    throw invalid(
      'instance_name must be lowercase letters, numbers, and hyphens only (no uppercase, no underscores, no spaces)',
    )
  }
  if (value.startsWith('-') || value.endsWith('-')) {
    throw invalid('instance_name cannot start or end with hyphen')
  }
  return value
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * Left out, null or "": a required field is "Missing required …"; `mode` and `commit_message`
 * count as not sent, on purpose (the frontend may send them so), as does a null
 * `spec.waf_enabled` (its "" is refused). The body schema and docs/pods.md say so.
 */
const missing = (v: unknown) => v === undefined || v === null || v === ''

/**
 * Validates a deploy request body with the messages of the system Portico replaces:
 * "Request body must be JSON", "Missing required field: customer|env|spec",
 * "Missing required spec field: instance_name", then the per-field rules.
 */
export function validateDeployRequest(body: unknown): DeployRequest {
  if (!isObject(body)) throw new AppError(400, 'INVALID_JSON', 'Request body must be JSON')
  for (const field of ['customer', 'env', 'spec'] as const) {
    if (missing(body[field])) throw invalid(`Missing required field: ${field}`)
  }
  const spec = body.spec
  if (!isObject(spec)) throw invalid('spec must be an object')
  if (missing(spec.instance_name)) throw invalid('Missing required spec field: instance_name')
  const { customer, env } = validatePodRef(body.customer, body.env)
  const instance_name = validateInstanceName(spec.instance_name)
  // A misspelt field would otherwise be dropped without a word (`"waf": true` deployed the
  // pod with its WAF off).
  const strayField = unknownKey(body, BODY_FIELDS)
  if (strayField)
    throw invalid(
      `Unknown field: ${strayField} (a deploy takes customer, env, spec, commit_message and mode)`,
    )
  const straySpecField = unknownKey(spec, SPEC_FIELDS)
  if (straySpecField)
    throw invalid(`Unknown spec field: ${straySpecField} (a deploy sets instance_name and waf_enabled)`)
  const waf = spec.waf_enabled ?? null
  if (waf !== null && typeof waf !== 'boolean') throw invalid('waf_enabled must be true or false')
  let commit_message: string | null = null
  if (!missing(body.commit_message)) {
    const m = body.commit_message
    if (typeof m !== 'string' || m.trim() === '' || m.length > COMMIT_MESSAGE_MAX) {
      throw invalid(`commit_message must be a non-empty string of at most ${COMMIT_MESSAGE_MAX} characters`)
    }
    // Postgres text cannot hold NUL (it would be a 500 at insert time).
    if (m.includes('\u0000')) throw invalid('commit_message must not contain a NUL character')
    commit_message = m
  }
  let mode: DeployRequest['mode'] = null
  if (!missing(body.mode)) {
    if (body.mode !== 'new' && body.mode !== 'edit') throw invalid('mode must be "new" or "edit"')
    mode = body.mode
  }
  return { customer, env, instance_name, waf_enabled: waf, commit_message, mode }
}

const ENV_ORDER = ['dev', 'stg', 'prd']

/** Sorts pods by customer, then env in lifecycle order (dev, stg, prd), then other envs alphabetically. */
export function sortPods<T extends PodRef>(pods: T[]): T[] {
  const rank = (env: string) => {
    const i = ENV_ORDER.indexOf(env)
    return i < 0 ? ENV_ORDER.length : i
  }
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
  return [...pods].sort(
    (a, b) => cmp(a.customer, b.customer) || rank(a.env) - rank(b.env) || cmp(a.env, b.env),
  )
}
