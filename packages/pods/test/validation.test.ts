import t, { type Test } from 'tap'
import { sortPods, validateDeployRequest, validateInstanceName, validatePodRef } from '../src/index.js'

const body = (over: Record<string, unknown> = {}, spec: Record<string, unknown> = {}) => ({
  customer: 'alpha',
  env: 'dev',
  spec: { instance_name: 'alpha-dev-02', waf_enabled: true, ...spec },
  ...over,
})

function rejects(t: Test, fn: () => unknown, message: string, code = 'VALIDATION_ERROR') {
  t.throws(fn, { statusCode: 400, code, message }, message)
}

t.test('a valid request is normalised', async (t) => {
  t.same(validateDeployRequest(body()), {
    customer: 'alpha',
    env: 'dev',
    instance_name: 'alpha-dev-02',
    waf_enabled: true,
    commit_message: null,
    mode: null,
  })
  const r = validateDeployRequest(
    body({ commit_message: 'Scale up', mode: 'new' }, { waf_enabled: undefined }),
  )
  t.equal(r.waf_enabled, null, 'waf left out: null, for the route to keep the pod’s current setting')
  t.equal(r.commit_message, 'Scale up')
  t.equal(r.mode, 'new')
})

t.test('missing fields and non-JSON bodies', async (t) => {
  for (const b of [undefined, null, 'customer=alpha', 42, ['alpha']]) {
    rejects(t, () => validateDeployRequest(b), 'Request body must be JSON', 'INVALID_JSON')
  }
  for (const field of ['customer', 'env', 'spec']) {
    rejects(t, () => validateDeployRequest(body({ [field]: undefined })), `Missing required field: ${field}`)
    rejects(t, () => validateDeployRequest(body({ [field]: '' })), `Missing required field: ${field}`)
  }
  rejects(t, () => validateDeployRequest(body({ spec: 'x' })), 'spec must be an object')
  rejects(
    t,
    () => validateDeployRequest(body({}, { wafEnabled: true })),
    'Unknown spec field: "wafEnabled" (a deploy sets instance_name and waf_enabled)',
  )
  rejects(
    t,
    () => validateDeployRequest(body({ [`x${'\u202e'.repeat(200)}`]: 1 })),
    `Unknown field: "x${'\u202e'.repeat(99)}" (a deploy takes customer, env, spec, commit_message and mode)`,
  )
  // A review's example: a token pasted as a key was echoed (and logged with the refusal).
  const hex = '0123456789abcdef0123456789abcdef01234567'
  for (const key of ['ghp_abcdefghijklmnopqrstuvwxyz0123456789', `${hex} `, `pat:${hex}`]) {
    rejects(
      t,
      () => validateDeployRequest(body({ [key]: 1 })),
      'Unknown field: "[REDACTED]" (a deploy takes customer, env, spec, commit_message and mode)',
    )
    rejects(
      t,
      () => validateDeployRequest(body({}, { [key]: 1 })),
      'Unknown spec field: "[REDACTED]" (a deploy sets instance_name and waf_enabled)',
    )
  }
  rejects(
    t,
    () => validateDeployRequest(body({}, { instance_name: undefined })),
    'Missing required spec field: instance_name',
  )
  rejects(
    t,
    () => validateDeployRequest(body({}, { waf_enabled: 'yes' })),
    'waf_enabled must be true or false',
  )
  rejects(t, () => validateDeployRequest(body({ mode: 'replace' })), 'mode must be "new" or "edit"')
  rejects(
    t,
    () => validateDeployRequest(body({ commit_message: 'x'.repeat(501) })),
    'commit_message must be a non-empty string of at most 500 characters',
  )
})

t.test('customer and environment names', async (t) => {
  rejects(t, () => validatePodRef('', 'dev'), 'customer must be 1-50 characters')
  rejects(t, () => validatePodRef('a'.repeat(51), 'dev'), 'customer must be 1-50 characters')
  rejects(t, () => validatePodRef('alpha', 'd'.repeat(51)), 'environment must be 1-50 characters')
  // Another JSON type is told the type (a new user's trial: `7` was told "must be 1-50 characters").
  for (const bad of [7, true, null, ['alpha'], {}]) {
    rejects(t, () => validatePodRef(bad, 'dev'), 'customer must be a string of 1-50 characters')
    rejects(t, () => validatePodRef('alpha', bad), 'environment must be a string of 1-50 characters')
  }
  t.same(validatePodRef('a'.repeat(50), 'Prod_2-x'), { customer: 'a'.repeat(50), env: 'Prod_2-x' })
  for (const bad of ['..', '../etc', 'a/b', 'a\\b', 'alpha%2F..', `${'x'.repeat(60)}/..`]) {
    rejects(t, () => validatePodRef(bad, 'dev'), 'customer contains path traversal attempt')
    rejects(t, () => validatePodRef('alpha', bad), 'environment contains path traversal attempt')
  }
  for (const bad of ['alpha.dev', 'al pha', 'ünïcode', 'a\0b']) {
    rejects(
      t,
      () => validatePodRef(bad, 'dev'),
      'customer contains invalid characters (use a-z, A-Z, 0-9, -, _ only)',
    )
    rejects(
      t,
      () => validatePodRef('alpha', bad),
      'environment contains invalid characters (use a-z, A-Z, 0-9, -, _ only)',
    )
  }
  rejects(
    t,
    () => validateDeployRequest(body({ customer: '../../etc' })),
    'customer contains path traversal attempt',
  )
})

t.test('instance names', async (t) => {
  t.equal(validateInstanceName('a'), 'a')
  t.equal(validateInstanceName('x'.repeat(30)), 'x'.repeat(30))
  rejects(t, () => validateInstanceName(''), 'instance_name must be 1-30 characters')
  rejects(t, () => validateInstanceName('x'.repeat(31)), 'instance_name must be 1-30 characters')
  for (const bad of [12, true, null, ['x'], {}]) {
    rejects(t, () => validateInstanceName(bad), 'instance_name must be a string of 1-30 characters')
  }
  for (const bad of ['Alpha', 'alpha_dev', 'alpha.dev', 'a b', 'a/b']) {
    rejects(
      t,
      () => validateInstanceName(bad),
      'instance_name must be lowercase letters, numbers, and hyphens only (no uppercase, no underscores, no spaces)',
    )
  }
  for (const bad of ['-alpha', 'alpha-', '-']) {
    rejects(t, () => validateInstanceName(bad), 'instance_name cannot start or end with hyphen')
  }
})

t.test('listing order: customer, then dev, stg, prd, then other envs alphabetically', async (t) => {
  const pods = [
    { customer: 'beta', env: 'prd' },
    { customer: 'alpha', env: 'qa' },
    { customer: 'alpha', env: 'prd' },
    { customer: 'alpha', env: 'dev' },
    { customer: 'alpha', env: 'demo' },
    { customer: 'alpha', env: 'stg' },
    { customer: 'beta', env: 'dev' },
  ]
  t.same(
    sortPods(pods).map((p) => `${p.customer}/${p.env}`),
    ['alpha/dev', 'alpha/stg', 'alpha/prd', 'alpha/demo', 'alpha/qa', 'beta/dev', 'beta/prd'],
  )
})

t.test('a NUL character anywhere in a deploy body is a 400, never a Postgres error', async (t) => {
  const body = (over: Record<string, unknown>, spec: Record<string, unknown> = {}) => ({
    customer: 'alpha',
    env: 'dev',
    spec: { instance_name: 'web-1', ...spec },
    ...over,
  })
  rejects(
    t,
    () => validateDeployRequest(body({ commit_message: 'deploy\u0000now' })),
    'commit_message must not contain a NUL character',
  )
  for (const [over, spec] of [
    [{ customer: 'al\u0000pha' }, {}],
    [{ env: 'd\u0000ev' }, {}],
    [{}, { instance_name: 'web\u00001' }],
  ] as const) {
    t.throws(() => validateDeployRequest(body(over, spec)), { statusCode: 400, code: 'VALIDATION_ERROR' })
  }
})
