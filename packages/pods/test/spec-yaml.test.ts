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
