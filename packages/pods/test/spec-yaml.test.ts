import t from 'tap'
import { parse } from 'yaml'
import { parseSpecYaml, renderSpec, SPEC_MAX_BYTES, specDocument } from '../src/index.js'

const fields = { customer: 'gamma', env: 'prd', instance_name: 'gamma-prd-02', waf_enabled: false }

// The seeded gamma/prd spec: a leading comment, an extra key with a trailing comment, labels.
const GAMMA_PRD = `# Pod spec for gamma (prd). Applied by .github/workflows/apply.yml on merge to main.
apiVersion: v1
kind: Pod
metadata:
  customer: gamma
  environment: prd
spec:
  compute:
    instance_name: gamma-prd-01 # keep me
    instance_type: t4g.nano
    disk_gb: 20 # sized for the nightly batch
  security:
    # WAF in front of the public endpoint
    waf:
      enabled: true
  labels:
    tier: production
`

t.test('parses a spec into a plain object', async (t) => {
  const { value } = parseSpecYaml(GAMMA_PRD, 'gamma/prd')
  t.match(value, { kind: 'Pod', spec: { compute: { disk_gb: 20 }, labels: { tier: 'production' } } })
  t.equal(parseSpecYaml('# only a comment\n', 'a/b').value, null, 'empty documents are null')
})

t.test('malformed, non-mapping, oversized and alias-bomb YAML are 422s naming the pod', async (t) => {
  t.throws(() => parseSpecYaml('spec: [unclosed', 'alpha/dev'), {
    statusCode: 422,
    code: 'INVALID_SPEC',
    message: /^Spec for alpha\/dev is not valid: /,
  })
  t.throws(() => parseSpecYaml('a: 1\na: 2\n', 'alpha/dev'), { code: 'INVALID_SPEC' }, 'duplicate keys')
  t.throws(() => parseSpecYaml('- just\n- a list\n', 'alpha/dev'), {
    code: 'INVALID_SPEC',
    message: 'Spec for alpha/dev is not valid: the document is not a mapping',
  })
  const big = `spec:\n  note: "${'x'.repeat(SPEC_MAX_BYTES)}"\n`
  t.throws(() => parseSpecYaml(big, 'alpha/dev'), {
    statusCode: 422,
    code: 'SPEC_TOO_LARGE',
    message: /^Spec for alpha\/dev is too large \(\d+ bytes; the limit is 65536\)$/,
  })
  // "Billion laughs": each level references the previous one ten times.
  const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
  for (let i = 1; i < 9; i++) {
    const prev = String.fromCharCode(96 + i)
    const cur = String.fromCharCode(97 + i)
    levels.push(`${cur}: &${cur} [${Array(10).fill(`*${prev}`).join(',')}]`)
  }
  const started = process.memoryUsage().heapUsed
  t.throws(() => parseSpecYaml(levels.join('\n'), 'alpha/dev'), {
    statusCode: 422,
    code: 'INVALID_SPEC',
    message: /alias/i,
  })
  t.ok(process.memoryUsage().heapUsed - started < 200 * 1024 * 1024, 'nothing was expanded')
})

t.test('a new spec is the full document', async (t) => {
  const text = renderSpec(null, fields, 'gamma/prd')
  t.same(parse(text), {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { customer: 'gamma', environment: 'prd' },
    spec: {
      compute: { instance_name: 'gamma-prd-02', instance_type: 't4g.nano' },
      security: { waf: { enabled: false } },
    },
  })
  t.same(parse(renderSpec('   \n', fields, 'gamma/prd')), specDocument(fields), 'an empty file is replaced')
  t.same(parse(renderSpec('# nothing yet\n', fields, 'gamma/prd')), specDocument(fields))
  t.match(renderSpec('# nothing yet\n', fields, 'gamma/prd'), /^# nothing yet\n/, 'a lone comment is kept')
})

t.test('editing changes only the owned fields and keeps comments, extra keys and order', async (t) => {
  const text = renderSpec(GAMMA_PRD, fields, 'gamma/prd')
  t.equal(
    text,
    GAMMA_PRD.replace(
      'instance_name: gamma-prd-01 # keep me',
      'instance_name: gamma-prd-02 # keep me',
    ).replace('enabled: true', 'enabled: false'),
    'a minimal, byte-for-byte diff',
  )
  t.equal(renderSpec(text, fields, 'gamma/prd'), text, 'rendering again is a no-op (idempotent)')
})

t.test('editing fills in missing owned fields and repairs wrong ones', async (t) => {
  const partial = `# hand-written
kind: Deployment
metadata:
  owner: team-x
spec:
  security: null
  extra: [1, 2]
`
  const text = renderSpec(partial, fields, 'gamma/prd')
  t.match(text, /^# hand-written\n/)
  t.same(parse(text), {
    kind: 'Pod',
    metadata: { owner: 'team-x', customer: 'gamma', environment: 'prd' },
    spec: {
      security: { waf: { enabled: false } },
      extra: [1, 2],
      compute: { instance_name: 'gamma-prd-02', instance_type: 't4g.nano' },
    },
    apiVersion: 'v1',
  })
  t.throws(
    () => renderSpec('spec: [', fields, 'gamma/prd'),
    { code: 'INVALID_SPEC' },
    'malformed specs are not overwritten',
  )
})

// Varied spec files as people write them; each holds all owned fields, so rendering with its
// own values must give the same bytes back.
const CORPUS: Record<string, string> = {
  lf: GAMMA_PRD,
  crlf: GAMMA_PRD.replace(/\n/g, '\r\n'),
  'no final newline': GAMMA_PRD.trimEnd(),
  'crlf, no final newline': GAMMA_PRD.trimEnd().replace(/\n/g, '\r\n'),
  'extra final newlines': `${GAMMA_PRD}\n\n`,
  'byte order mark': `\uFEFF${GAMMA_PRD}`,
  'four-space indent, blank lines': `apiVersion: v1

kind: Pod

metadata:
    customer: gamma   # who
    environment: prd

spec:
    security:
        waf:
            enabled: false
    compute:
        instance_type: t4g.nano
        instance_name: gamma-prd-01
`,
  'quoted values': `"apiVersion": "v1"
'kind': 'Pod'
metadata: { customer: "gamma", environment: 'prd' }
spec:
  compute:
    instance_name: "gamma-prd-01"
    instance_type: 't4g.nano'
  security: {waf: {enabled: True}}
`,
  'flow style everywhere': `{apiVersion: v1, kind: Pod, metadata: {customer: gamma, environment: prd},
  spec: {compute: {instance_name: gamma-prd-01, instance_type: t4g.nano}, security: {waf: {enabled: FALSE}}}}
`,
  'anchors and merge keys': `# shared defaults
x-defaults: &defaults
  instance_type: t4g.nano
  disk_gb: 20
x-waf: &waf
  enabled: true
apiVersion: v1
kind: Pod
metadata:
  customer: gamma
  environment: prd
spec:
  compute:
    <<: *defaults
    instance_name: gamma-prd-01
  security:
    waf: *waf
`,
  'tagged and anchored scalars': `apiVersion: !!str v1
kind: &kind Pod
metadata:
  customer: gamma
  environment: prd
  kind_again: *kind
spec:
  compute:
    instance_name: !!str gamma-prd-01
    instance_type: t4g.nano
  security:
    waf:
      enabled: !!bool true
`,
  'document markers and trailing spaces': `%YAML 1.2
---
apiVersion: v1   
kind: Pod
metadata:
  customer: gamma
  environment: prd
spec:
  compute:
    instance_name: gamma-prd-01\t# tab before comment
    instance_type: t4g.nano
  security:
    waf:
      enabled: true
...
`,
  'block sequence and long comments': `apiVersion: v1
kind: Pod
# ------------------------------------------------------------
metadata:
  customer: gamma
  environment: prd
  owners:
    - team-a
    - team-b
spec:
  compute:
    instance_name: gamma-prd-01 # "quoted" 'stuff' in a comment
    instance_type: t4g.nano
  security:
    waf:
      enabled: false
`,
}

// biome-ignore lint/suspicious/noExplicitAny: test reads into parsed YAML
type Any = any
const specOf = (text: string): Any => parseSpecYaml(text, 'a/b').value

function ownValues(text: string, where: string) {
  const value = parseSpecYaml(text, where).value as {
    metadata: { customer: string; environment: string }
    spec: { compute: { instance_name: string }; security: { waf: { enabled: boolean } } }
  }
  return {
    customer: value.metadata.customer,
    env: value.metadata.environment,
    instance_name: value.spec.compute.instance_name,
    waf_enabled: value.spec.security.waf.enabled,
  }
}

function changedLines(before: string, after: string): number {
  const a = before.split('\n')
  const b = after.split('\n')
  if (a.length !== b.length) return Number.POSITIVE_INFINITY
  return a.filter((line, i) => line !== b[i]).length
}

t.test('property: own values render the same bytes; one changed value is a one-line diff', async (t) => {
  for (const [name, text] of Object.entries(CORPUS)) {
    const own = ownValues(text, name)
    t.equal(renderSpec(text, own, name), text, `${name}: identical bytes`)
    const changes: Array<[string, Partial<typeof own>]> = [
      ['instance_name', { instance_name: 'gamma-prd-77' }],
      ['waf', { waf_enabled: !own.waf_enabled }],
      ['customer', { customer: 'delta' }],
      ['env', { env: 'stg' }],
    ]
    for (const [what, change] of changes) {
      const want = { ...own, ...change }
      const out = renderSpec(text, want, name)
      const diff = changedLines(text, out)
      // Merge keys and aliases can put one value on a shared line; still exactly one line.
      t.equal(diff, 1, `${name}: changing ${what} changes one line`)
      t.same(ownValues(out, name), want, `${name}: ${what} reads back`)
      t.equal(out.includes('\r\n'), text.includes('\r\n'), `${name}: line endings kept`)
      t.equal(/\n$/.test(out), /\n$/.test(text), `${name}: final newline kept or absent`)
      t.equal(renderSpec(out, want, name), out, `${name}: ${what} is idempotent`)
    }
  }
})

t.test('quoting and boolean spelling of an edited value follow the original', async (t) => {
  const out = renderSpec(CORPUS['quoted values'] as string, { ...fields, waf_enabled: false }, 'q')
  t.match(out, /instance_name: "gamma-prd-02"\n/)
  t.match(out, /enabled: False\}/)
  const single = renderSpec(`${GAMMA_PRD}`.replace('gamma-prd-01', "'gamma-prd-01'"), fields, 'q')
  t.match(single, /instance_name: 'gamma-prd-02' # keep me/)
  const numeric = renderSpec(GAMMA_PRD, { ...fields, instance_name: '123' }, 'q')
  t.match(numeric, /instance_name: "123" # keep me/, 'a value that would read as a number is quoted')
  t.equal(specOf(numeric).spec.compute.instance_name, '123')
})

t.test('merge keys read as merged; anchors and aliases survive an edit', async (t) => {
  const text = CORPUS['anchors and merge keys'] as string
  const { value } = parseSpecYaml(text, 'gamma/prd')
  t.same((value as Any).spec.compute, {
    instance_type: 't4g.nano',
    disk_gb: 20,
    instance_name: 'gamma-prd-01',
  })
  t.notOk(JSON.stringify(value).includes('<<'), 'no literal "<<" key')
  const out = renderSpec(text, fields, 'gamma/prd')
  t.match(out, /x-defaults: &defaults\n/)
  t.match(out, /<<: \*defaults\n/)
  t.match(out, /x-waf: &waf\n {2}enabled: false\n/, 'an anchor used once is edited where it is defined')
  t.match(out, /waf: \*waf\n/, 'the alias stays')
  // An anchor aliased twice is not edited (that would change the other use): the document is
  // re-rendered with the value set where the deploy needs it.
  const shared = text.replace('security:\n    waf: *waf\n', 'security:\n    waf: *waf\n  other: *waf\n')
  const out2 = renderSpec(shared, fields, 'gamma/prd')
  const v2 = specOf(out2)
  t.same(v2.spec.security.waf, { enabled: false })
  t.same(v2.spec.other, { enabled: true }, 'the other use keeps its value')
  // The README example: a flow map with a merge key.
  const flow = 'd: &d {instance_type: t4g.nano}\nspec:\n  compute: {<<: *d, instance_name: x}\n'
  t.same(specOf(flow).spec.compute, {
    instance_type: 't4g.nano',
    instance_name: 'x',
  })
})

t.test('the alias limit still applies through merge keys', async (t) => {
  const merges = Array.from({ length: 30 }, (_, i) => `k${i}: {<<: *d}`).join('\n')
  t.throws(() => parseSpecYaml(`d: &d {a: 1}\n${merges}\n`, 'a/b'), {
    code: 'INVALID_SPEC',
    message: /alias/i,
  })
})

t.test('a missing owned field is added, keeping CRLF and a missing final newline', async (t) => {
  const text =
    'apiVersion: v1\r\nkind: Pod\r\nmetadata:\r\n  customer: gamma\r\n  environment: prd\r\nspec:\r\n  compute: *c'
  const withAnchor = `c: &c\r\n  instance_name: gamma-prd-01\r\n  disk_gb: 9\r\n${text}`
  const out = renderSpec(withAnchor, fields, 'gamma/prd')
  t.notMatch(out, /[^\r]\n/, 'only CRLF')
  t.notMatch(out, /\n$/, 'still no final newline')
  t.same(specOf(out).spec, {
    compute: { instance_name: 'gamma-prd-02', disk_gb: 9, instance_type: 't4g.nano' },
    security: { waf: { enabled: false } },
  })
})
