import { AppError } from '@portico/core'
import { Document, isMap, isScalar, parseDocument } from 'yaml'
import type { SpecFields } from './validation.js'

/** Largest spec file Portico parses, in bytes (the seeded specs are ~400 bytes). */
export const SPEC_MAX_BYTES = 64 * 1024
/** Alias expansions allowed when resolving a spec (defeats "billion laughs" documents). */
export const SPEC_MAX_ALIASES = 20
/** Instance type every deployed pod gets. */
export const DEFAULT_INSTANCE_TYPE = 't4g.nano'

const invalidSpec = (where: string, reason: string) =>
  new AppError(422, 'INVALID_SPEC', `Spec for ${where} is not valid: ${reason}`)

/**
 * Parses spec YAML with limits: at most {@link SPEC_MAX_BYTES} bytes, at most
 * {@link SPEC_MAX_ALIASES} alias expansions, no duplicate keys. Returns the document (for
 * editing) and its plain value (null for an empty file). Throws 422 `SPEC_TOO_LARGE` or
 * `INVALID_SPEC`, naming `where` (e.g. "alpha/dev"), never a crash.
 */
export function parseSpecYaml(text: string, where: string): { doc: Document; value: unknown } {
  const bytes = Buffer.byteLength(text, 'utf8')
  if (bytes > SPEC_MAX_BYTES) {
    throw new AppError(
      422,
      'SPEC_TOO_LARGE',
      `Spec for ${where} is too large (${bytes} bytes; the limit is ${SPEC_MAX_BYTES})`,
    )
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false, strict: true })
  const first = doc.errors[0]
  if (first) throw invalidSpec(where, first.message.split('\n')[0] ?? 'YAML syntax error')
  let value: unknown
  try {
    value = doc.toJS({ maxAliasCount: SPEC_MAX_ALIASES })
  } catch (err) {
    throw invalidSpec(where, (err as Error).message.split('\n')[0] ?? 'unresolvable YAML')
  }
  if (value !== null && value !== undefined && (typeof value !== 'object' || Array.isArray(value))) {
    throw invalidSpec(where, 'the document is not a mapping')
  }
  return { doc, value: value ?? null }
}

/** The full spec document a deploy writes for a new pod. */
export function specDocument(fields: SpecFields) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { customer: fields.customer, environment: fields.env },
    spec: {
      compute: { instance_name: fields.instance_name, instance_type: DEFAULT_INSTANCE_TYPE },
      security: { waf: { enabled: fields.waf_enabled } },
    },
  }
}

/** The fields a deploy owns, as paths into the document; everything else in a spec is kept. */
function ownedFields(fields: SpecFields): [string[], string | boolean][] {
  return [
    [['apiVersion'], 'v1'],
    [['kind'], 'Pod'],
    [['metadata', 'customer'], fields.customer],
    [['metadata', 'environment'], fields.env],
    [['spec', 'compute', 'instance_name'], fields.instance_name],
    [['spec', 'compute', 'instance_type'], DEFAULT_INSTANCE_TYPE],
    [['spec', 'security', 'waf', 'enabled'], fields.waf_enabled],
  ]
}

/**
 * Renders the spec a deploy commits. With no existing file (or an empty one) this is the full
 * document; otherwise only the owned fields change in place, so other keys, comments and key
 * order survive. Existing scalars are updated in place to keep their own comments.
 */
export function renderSpec(existing: string | null, fields: SpecFields, where: string): string {
  if (existing === null || existing.trim() === '') return new Document(specDocument(fields)).toString()
  const { doc } = parseSpecYaml(existing, where)
  if (!isMap(doc.contents)) {
    // Only comments (or `null`): write the full document, keeping the leading comment.
    const fresh = new Document(specDocument(fields))
    fresh.commentBefore = doc.commentBefore ?? doc.comment
    return fresh.toString()
  }
  for (const [path, value] of ownedFields(fields)) {
    const node = doc.getIn(path, true)
    if (isScalar(node)) {
      node.value = value
      continue
    }
    // A non-mapping in the way (e.g. `security: null`) is replaced so the path can be set.
    for (let i = 1; i < path.length; i++) {
      const parent = doc.getIn(path.slice(0, i), true)
      if (parent !== undefined && !isMap(parent)) doc.setIn(path.slice(0, i), doc.createNode({}))
    }
    doc.setIn(path, value)
  }
  return doc.toString()
}
