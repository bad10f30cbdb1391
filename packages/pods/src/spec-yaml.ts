import { AppError } from '@portico/core'
import {
  type Alias,
  Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  type Node,
  parse,
  parseDocument,
  type Scalar,
  visit,
} from 'yaml'
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
 * {@link SPEC_MAX_ALIASES} alias expansions, no duplicate keys. Merge keys (`<<: *defaults`)
 * are read as merged, as the YAML 1.1 loader of the system Portico replaces read them (the
 * `yaml` package's `merge` option). Returns the document (for editing) and its plain value
 * (null for an empty file). Throws 422 `SPEC_TOO_LARGE` or `INVALID_SPEC`, naming `where`
 * (e.g. "alpha/dev"), never a crash.
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
  const doc = parseDocument(text, {
    uniqueKeys: true,
    prettyErrors: false,
    strict: true,
    merge: true,
  })
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
 * Whether a spec document turns the WAF on (`spec.security.waf.enabled: true`): what a deploy
 * that leaves `waf_enabled` out keeps.
 */
export function wafEnabledIn(document: unknown): boolean {
  return valueAt(document, ['spec', 'security', 'waf', 'enabled']) === true
}

/** The value at `path` in a plain (already merged) spec value, or undefined. */
function valueAt(value: unknown, path: string[]): unknown {
  let cur = value
  for (const key of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined
    cur = (cur as Record<string, unknown>)[key]
  }
  return cur
}

/** Whether `text` reads back as the same string when written as a plain scalar. */
function plainSafe(text: string, inFlow: boolean): boolean {
  if (!/^[A-Za-z0-9][A-Za-z0-9._/-]*$/.test(text)) return false
  if (inFlow && /[,[\]{}]/.test(text)) return false
  return parse(text) === text
}

/**
 * The source text for `want` replacing `node`, in the node's own style where it can carry the
 * value: quoting kept for strings, `True`/`TRUE` spelling kept for booleans.
 */
function scalarSource(node: Scalar | Alias, want: string | boolean, source: string, inFlow: boolean): string {
  const old = source.slice(node.range?.[0] ?? 0, node.range?.[1] ?? 0)
  if (typeof want === 'boolean') {
    const word = String(want)
    if (/^[A-Z][a-z]+$/.test(old)) return word[0]?.toUpperCase() + word.slice(1)
    if (/^[A-Z]+$/.test(old)) return word.toUpperCase()
    return word
  }
  const type = isScalar(node) && typeof node.value === 'string' ? node.type : undefined
  if (type === 'QUOTE_SINGLE') return `'${want.replace(/'/g, "''")}'`
  if (type === 'QUOTE_DOUBLE' || !plainSafe(want, inFlow)) return JSON.stringify(want)
  return want
}

interface Edit {
  start: number
  end: number
  text: string
}

/**
 * Finds the node at `path` the way a reader sees it: through aliases and merge keys (explicit
 * keys first, then merged sources in order). Returns undefined when it is absent, or when the way
 * to it passes an anchor that is also aliased elsewhere (editing there would change other values).
 */
function findOwnedNode(doc: Document, path: string[], aliasUses: Map<Node, number>) {
  const deref = (node: unknown): unknown => {
    if (!isAlias(node)) return node
    const target = node.resolve(doc)
    return target !== undefined && (aliasUses.get(target) ?? 0) <= 1 ? target : undefined
  }
  const lookup = (map: unknown, key: string, depth: number): unknown => {
    const m = deref(map)
    if (!isMap(m) || depth > SPEC_MAX_ALIASES) return undefined
    const own = m.items.find((pair) => isScalar(pair.key) && pair.key.value === key)
    if (own) return own.value
    const merge = m.items.find((pair) => isScalar(pair.key) && pair.key.value === '<<')
    if (!merge) return undefined
    const sources = isSeq(merge.value) ? merge.value.items : [merge.value]
    for (const source of sources) {
      const found = lookup(source, key, depth + 1)
      if (found !== undefined) return found
    }
    return undefined
  }
  let cur: unknown = doc.contents
  let parent: unknown
  for (const key of path) {
    parent = deref(cur)
    cur = lookup(cur, key, 0)
    if (cur === undefined) return undefined
  }
  if (!(isScalar(cur) || isAlias(cur)) || !cur.range) return undefined
  return { node: cur, inFlow: isMap(parent) && parent.flow === true }
}

/**
 * Edits the owned fields in `source` as text splices, or returns undefined when a field is
 * missing (or reachable only through a shared anchor) and the document must change shape.
 * Values already right (including merged and aliased ones) are not touched.
 */
function spliceOwnedFields(doc: Document, value: unknown, source: string, fields: SpecFields) {
  const aliasUses = new Map<Node, number>()
  visit(doc, {
    Alias(_, alias) {
      const target = alias.resolve(doc)
      if (target) aliasUses.set(target, (aliasUses.get(target) ?? 0) + 1)
    },
  })
  const edits: Edit[] = []
  for (const [path, want] of ownedFields(fields)) {
    if (valueAt(value, path) === want) continue
    const found = findOwnedNode(doc, path, aliasUses)
    if (found === undefined) return undefined
    const { node, inFlow } = found
    const [start, end] = node.range as [number, number, number]
    let text = scalarSource(node, want, source, inFlow)
    if (isScalar(node) && (node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED')) {
      // A block scalar's range runs to the end of its last line: keep the line breaks after it.
      text += /(?:\r?\n)+$/.exec(source.slice(start, end))?.[0] ?? ''
    }
    if (edits.some((edit) => edit.start === start)) return undefined
    edits.push({ start, end, text })
  }
  edits.sort((a, b) => b.start - a.start)
  let out = source
  for (const edit of edits) out = out.slice(0, edit.start) + edit.text + out.slice(edit.end)
  return out
}

/** Gives a re-rendered document the line endings and final newline (or its absence) of `source`. */
function likeSource(rendered: string, source: string): string {
  let out = rendered
  if (!/(?:\r?\n)$/.test(source)) out = out.replace(/\n$/, '')
  if (source.includes('\r\n')) out = out.replace(/\r?\n/g, '\r\n')
  return out
}

/**
 * Renders the spec a deploy commits. With no existing file (or an empty one) this is the full
 * document. Otherwise the file comes back byte for byte except for the owned values the deploy
 * sets: each is spliced into the source text in its own quoting style, so line endings (CRLF),
 * indentation, quoting, key order, comments, blank lines, anchors and aliases, and the final
 * newline or its absence are kept; values already right (also through aliases or merge keys)
 * are not touched. Only when an owned field is missing, or a non-mapping is in the way, is the
 * document changed through the `yaml` AST and re-rendered, still with the file's line endings
 * and final newline.
 * @throws {AppError} 422 `INVALID_SPEC` / `SPEC_TOO_LARGE` as {@link parseSpecYaml}.
 */
export function renderSpec(existing: string | null, fields: SpecFields, where: string): string {
  if (existing === null || existing.trim() === '') return new Document(specDocument(fields)).toString()
  const { doc, value } = parseSpecYaml(existing, where)
  if (!isMap(doc.contents)) {
    // Only comments (or `null`): write the full document, keeping the leading comment.
    const fresh = new Document(specDocument(fields))
    fresh.commentBefore = doc.commentBefore ?? doc.comment
    return likeSource(fresh.toString(), existing)
  }
  const spliced = spliceOwnedFields(doc, value, existing, fields)
  if (spliced !== undefined) return spliced
  for (const [path, want] of ownedFields(fields)) {
    const node = doc.getIn(path, true)
    if (isScalar(node)) {
      node.value = want
      continue
    }
    // A non-mapping in the way (e.g. `security: null`) is replaced so the path can be set.
    for (let i = 1; i < path.length; i++) {
      const parent = doc.getIn(path.slice(0, i), true)
      if (parent === undefined || isMap(parent)) continue
      // An alias is replaced by a copy of what it resolves to, so its other keys survive.
      const resolved = isAlias(parent) ? valueAt(value, path.slice(0, i)) : undefined
      const copy = resolved !== null && typeof resolved === 'object' && !Array.isArray(resolved)
      doc.setIn(path.slice(0, i), doc.createNode(copy ? resolved : {}))
    }
    doc.setIn(path, want)
  }
  return likeSource(doc.toString(), existing)
}
