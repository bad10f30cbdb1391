import { type TSchema, Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import t from 'tap'
import { ConfigError, ConfigSchema, expectedInWords, loadConfig } from '../src/config.js'

const KEY = Buffer.alloc(32, 7).toString('base64')

t.test('defaults give a working development configuration', async (t) => {
  const c = loadConfig({})
  t.equal(c.NODE_ENV, 'development')
  t.equal(c.PORT, 3000)
  t.equal(c.PUBLIC_URL, 'http://localhost:3000')
  t.equal(c.GITHUB_API_URL, 'https://api.github.com')
  t.equal(c.GITHUB_OAUTH_SCOPES, 'repo read:org', 'no workflow scope')
  t.equal(c.ALLOW_SERVICE_TOKEN_FALLBACK, false, 'no anonymous fallback unless a person turns it on')
  t.same(c.operatorGithubIds, [])
  t.equal(c.SPECS_PATH, 'infra')
  t.equal(c.WORKFLOW_BRANCH, 'main')
  t.equal(c.CLONE_TTL_HOURS, 168)
  t.equal(c.DEPLOY_WAIT_MS, 10000)
  t.same(c.workerQueues, ['clone', 'deploy', 'maintenance', 'webhooks'])
  t.equal(c.oauthConfigured, false)
  t.equal(c.trustProxy, false)
  t.ok(c.SESSION_SECRET.length >= 32)
  t.equal(c.keyring.activeKeyId, 'dev')
})

t.test('values are converted and parsed', async (t) => {
  const c = loadConfig({
    PORT: '8080',
    ALLOW_SERVICE_TOKEN_FALLBACK: 'true',
    WORKER_QUEUES: 'clone, deploy',
    OPERATOR_LOGINS: 'Octocat, hubot',
    OPERATOR_GITHUB_IDS: '583231, 7',
    TRUST_PROXY: '2',
    PUBLIC_URL: 'https://portico.example.com/',
    GITHUB_OAUTH_CLIENT_ID: 'id',
    GITHUB_OAUTH_CLIENT_SECRET: 'secret',
    ALLOWED_ORIGINS: 'https://app.example.com',
    LOG_LEVEL: '',
  })
  t.equal(c.PORT, 8080)
  t.equal(c.ALLOW_SERVICE_TOKEN_FALLBACK, true)
  t.same(c.workerQueues, ['clone', 'deploy'])
  t.same(c.operatorLogins, ['octocat', 'hubot'])
  t.same(c.operatorGithubIds, [583231, 7])
  t.throws(() => loadConfig({ OPERATOR_GITHUB_IDS: '1,0' }), /OPERATOR_GITHUB_IDS/)
  t.equal(c.trustProxy, 2)
  t.equal(c.PUBLIC_URL, 'https://portico.example.com')
  t.equal(c.oauthConfigured, true)
  t.same(c.allowedOrigins, ['https://app.example.com'])
  t.equal(c.LOG_LEVEL, 'info', 'an empty value counts as unset')
  t.same(loadConfig({ TRUST_PROXY: '10.0.0.1, 10.0.0.2' }).trustProxy, ['10.0.0.1', '10.0.0.2'])
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, true)
})

t.test('TRUST_PROXY lists only addresses @fastify/proxy-addr accepts; integers are whole', async (t) => {
  t.same(loadConfig({ TRUST_PROXY: '10.0.0.0/8, fd00::/8, loopback' }).trustProxy, [
    '10.0.0.0/8',
    'fd00::/8',
    'loopback',
  ])
  t.same(loadConfig({ TRUST_PROXY: '10.0.0.0/255.0.0.0' }).trustProxy, ['10.0.0.0/255.0.0.0'])
  // The second review: netmasks proxy-addr refuses passed a hand-written check and crashed start-up.
  for (const bad of [
    'banana',
    '10.0.0.1/33',
    '10.0.0.1/8/8',
    '10.0.0.1, nope',
    '::1/129',
    '10.0.0.0/255.0.255.0',
  ]) {
    t.throws(() => loadConfig({ TRUST_PROXY: bad }), /TRUST_PROXY: expected true, false, a hop count/, bad)
  }
  // The example of the review: TRUST_PROXY=banana passed validation and crashed the API at start.
  t.throws(() => loadConfig({ TRUST_PROXY: 'banana' }), /TRUST_PROXY: .*\(got "banana"\)/)
  for (const [key, value] of [
    ['CLONE_MAX_MB', '1.5'],
    ['PORT', '3e3'],
    ['WORKER_LOCK_MS', '1000.0'],
  ] as const) {
    t.throws(
      () => loadConfig({ [key]: value }),
      new RegExp(`${key}: expected a whole number`),
      `${key}=${value}`,
    )
  }
  t.equal(loadConfig({ CLONE_MAX_MB: '2' }).CLONE_MAX_MB, 2)
  // Values that feed timers or dates are bounded (a timer over 2³¹−1 ms fires at once).
  for (const [key, value] of [
    ['CLONE_TIMEOUT_SECONDS', '3000000'],
    ['SHUTDOWN_TIMEOUT_MS', '2147483648'],
    ['DEPLOY_WAIT_MS', '9999999999'],
    ['CLONE_TTL_HOURS', '100000'],
  ] as const) {
    t.throws(() => loadConfig({ [key]: value }), new RegExp(key), `${key}=${value}`)
  }
  t.equal(loadConfig({ SHUTDOWN_TIMEOUT_MS: '2147483647' }).SHUTDOWN_TIMEOUT_MS, 2147483647)
})

t.test('one error names every bad variable', async (t) => {
  const err = t.throws(() =>
    loadConfig({
      PORT: 'eighty',
      DATABASE_URL: 'mysql://x',
      REDIS_PREFIX: 'no-braces',
      LOG_LEVEL: 'loud',
      WORKER_QUEUES: 'clone,emails',
      TOKEN_ENCRYPTION_KEYS: 'k1:tooshort',
      GITHUB_OAUTH_CLIENT_ID: 'only-id',
      GH_REPO: 'not a repo',
    }),
  ) as ConfigError
  t.type(err, ConfigError)
  for (const name of [
    'PORT',
    'DATABASE_URL',
    'REDIS_PREFIX',
    'LOG_LEVEL',
    'WORKER_QUEUES',
    'TOKEN_ENCRYPTION_KEYS',
    'GITHUB_OAUTH_CLIENT_SECRET',
    'GH_REPO',
  ]) {
    t.match(err.message, name, `names ${name}`)
  }
  t.equal(err.problems.length >= 8, true)
  // Each problem says in words what the setting takes, never a regular expression (the examples
  // of a first-time user), and each variable is named once.
  t.match(
    err.message,
    'LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent (got "loud")',
  )
  t.match(err.message, 'REDIS_PREFIX: expected a name in braces, such as {portico}')
  t.match(err.message, 'DATABASE_URL: expected a postgres:// or postgresql:// URL (got "mysql://x")')
  t.match(err.message, 'GH_REPO: expected owner/repo (got "not a repo")')
  t.notMatch(err.message, /\^|\$\)|Expected (string|union)/, 'no regular expression, no schema jargon')
  const names = err.problems.map((p) => p.split(':')[0])
  t.same(names, [...new Set(names)], 'one problem per variable')
  const redis = t.throws(() => loadConfig({ REDIS_URL: 'localhost:6379' })) as ConfigError
  t.match(redis.message, 'REDIS_URL: expected a redis:// or rediss:// URL such as redis://127.0.0.1:6379')
})

t.test('production requires every secret and has no defaults for them', async (t) => {
  const err = t.throws(() => loadConfig({ NODE_ENV: 'production' })) as ConfigError
  t.match(err.message, 'SESSION_SECRET: required when NODE_ENV=production')
  t.match(err.message, 'TOKEN_ENCRYPTION_KEYS: required when NODE_ENV=production')
  t.match(err.message, 'DATABASE_URL: required when NODE_ENV=production')
  t.equal(err.problems.filter((p) => p.startsWith('TOKEN_ENCRYPTION_KEYS')).length, 1, 'said once')
  const ok = loadConfig({
    NODE_ENV: 'production',
    SESSION_SECRET: 's'.repeat(40),
    TOKEN_ENCRYPTION_KEYS: `k1:${KEY}`,
    DATABASE_URL: 'postgres://app@db/portico',
  })
  t.equal(ok.keyring.activeKeyId, 'k1')
})

t.test('secrets never appear in error messages', async (t) => {
  const secret = 'short-secret-value'
  const err = t.throws(() => loadConfig({ SESSION_SECRET: secret })) as ConfigError
  t.match(err.message, 'SESSION_SECRET')
  t.notMatch(err.message, secret)
  const err2 = t.throws(() => loadConfig({ TOKEN_ENCRYPTION_KEYS: `k1:${KEY.slice(0, 20)}` })) as ConfigError
  t.notMatch(err2.message, KEY.slice(0, 20))
})

t.test('REDIS_PREFIX, and QUEUE_PREFIX as its deprecated alias', async (t) => {
  const plain = loadConfig({})
  t.equal(plain.REDIS_PREFIX, '{portico}')
  t.same(plain.deprecations, [])
  const renamed = loadConfig({ REDIS_PREFIX: '{acme}' })
  t.equal(renamed.REDIS_PREFIX, '{acme}')
  const alias = loadConfig({ QUEUE_PREFIX: '{legacy}' })
  t.equal(alias.REDIS_PREFIX, '{legacy}', 'the old name still works')
  t.match(alias.deprecations, [/QUEUE_PREFIX is deprecated.*REDIS_PREFIX/])
  t.equal(loadConfig({ QUEUE_PREFIX: '{same}', REDIS_PREFIX: '{same}' }).REDIS_PREFIX, '{same}')
  const err = t.throws(() => loadConfig({ QUEUE_PREFIX: '{a}', REDIS_PREFIX: '{b}' })) as ConfigError
  t.match(err.message, 'REDIS_PREFIX / QUEUE_PREFIX: both set, to different values')
})

type Prop = TSchema & {
  type?: string
  minimum?: number
  maximum?: number
  minLength?: number
  pattern?: string
  expects?: string
  anyOf?: { const?: unknown }[]
}
const SECRETS = [
  'SESSION_SECRET',
  'TOKEN_ENCRYPTION_KEYS',
  'GITHUB_OAUTH_CLIENT_SECRET',
  'GH_TOKEN',
  'METRICS_TOKEN',
  'GITHUB_APP_PRIVATE_KEY',
  'GITHUB_WEBHOOK_SECRET',
  'GITHUB_WEBHOOK_SECRET_PREVIOUS',
]
/** Wrong values of the settings whose check is code rather than schema keywords. */
const CUSTOM: Record<string, [string, string]> = {
  TRUST_PROXY: [
    'banana',
    'TRUST_PROXY: expected true, false, a hop count, or comma-separated IP addresses or CIDRs (got "banana")',
  ],
  ALLOWED_ORIGINS: [
    'app.example.com',
    'ALLOWED_ORIGINS: expected comma-separated origins such as https://app.example.com (got "app.example.com")',
  ],
  WORKER_QUEUES: [
    'clone,emails',
    'WORKER_QUEUES: expected all or a subset of clone,deploy,maintenance,webhooks (got "clone,emails")',
  ],
  TOKEN_ENCRYPTION_KEYS: ['k1:c2hvcnQ=', 'TOKEN_ENCRYPTION_KEYS: '],
}

/** Every way each variable's schema can be broken, with the one sentence it must produce. */
function wrongValues(): [string, string, string][] {
  const cases: [string, string, string][] = []
  for (const [key, prop] of Object.entries(ConfigSchema.properties as Record<string, Prop>)) {
    const got = (v: string) => (SECRETS.includes(key) ? '' : ` (got ${v})`)
    if (prop.type === 'integer') {
      cases.push([key, '1.5', `${key}: expected a whole number (got "1.5")`])
      if (prop.minimum !== undefined && prop.minimum > 0) {
        const v = String(prop.minimum - 1)
        cases.push([key, v, `${key}: expected a whole number of at least ${prop.minimum} (got ${v})`])
      }
      if (prop.maximum !== undefined && prop.maximum < Number.MAX_SAFE_INTEGER) {
        const v = String(prop.maximum + 1)
        cases.push([key, v, `${key}: expected a whole number of at most ${prop.maximum} (got ${v})`])
      }
    } else if (prop.type === 'boolean') {
      cases.push([key, 'maybe', `${key}: expected true or false (got "maybe")`])
    } else if (prop.anyOf) {
      const allowed = prop.anyOf.map((b) => String(b.const)).join(', ')
      cases.push([key, 'nope', `${key}: expected one of ${allowed} (got "nope")`])
    } else if (prop.pattern) {
      cases.push([key, '%% bad %%', `${key}: expected ${prop.expects}${got('"%% bad %%"')}`])
    } else if (prop.minLength !== undefined && prop.minLength > 1) {
      const v = 'x'.repeat(prop.minLength - 1)
      cases.push([key, v, `${key}: expected at least ${prop.minLength} characters${got(JSON.stringify(v))}`])
    }
    if (CUSTOM[key]) cases.push([key, ...CUSTOM[key]])
  }
  return cases
}

t.test('every variable given a wrong value gets exactly one sentence, in words', async (t) => {
  const cases = wrongValues()
  t.ok(cases.length > 60, `${cases.length} cases`)
  for (const [key, value, sentence] of cases) {
    const err = t.throws(() => loadConfig({ [key]: value }), `${key}=${value}`) as ConfigError
    if (!(err instanceof ConfigError)) continue
    const mine = err.problems.filter((p) => p.slice(0, p.indexOf(':')).split(' / ').includes(key))
    t.equal(mine.length, 1, `${key}=${value}: one problem (${mine.join(' | ')})`)
    t.ok(mine[0]?.startsWith(sentence), `${key}=${value}: ${mine[0]}`)
    t.notMatch(
      err.message,
      /Expected|\^|\$\)|\[A-Z/,
      `${key}=${value}: no schema jargon or regular expression`,
    )
    if (SECRETS.includes(key)) t.notMatch(err.message, value, `${key}: its value is not echoed`)
  }
  // All at once: one ConfigError, one sentence per variable.
  const all = Object.fromEntries(cases.map(([key, value]) => [key, value]))
  const err = t.throws(() => loadConfig(all)) as ConfigError
  const names = err.problems.map((p) => p.split(':')[0])
  t.same(names, [...new Set(names)], 'one problem per variable')
})

t.test('the examples of the trial read in words, once each', async (t) => {
  const problems = (env: Record<string, string>) => (t.throws(() => loadConfig(env)) as ConfigError).problems
  t.same(problems({ WORKER_CONCURRENCY: '0' }), [
    'WORKER_CONCURRENCY: expected a whole number of at least 1 (got 0)',
  ])
  t.same(problems({ METRICS_TOKEN: 'short' }), ['METRICS_TOKEN: expected at least 16 characters'])
  t.same(problems({ OPERATOR_GITHUB_IDS: 'octocat' }), [
    'OPERATOR_GITHUB_IDS: expected comma-separated numbers (got "octocat")',
  ])
  t.same(problems({ OPERATOR_GITHUB_IDS: '1,0,00' }), [
    'OPERATOR_GITHUB_IDS: expected comma-separated GitHub user ids, each a whole number of at least 1 (got "0", "00")',
  ])
  t.same(problems({ TRUST_PROXY: '10.0.0.1, a, b' }), [
    'TRUST_PROXY: expected true, false, a hop count, or comma-separated IP addresses or CIDRs (got "a", "b")',
  ])
  // The missing two are another problem, told without naming GITHUB_APP_ID a second time.
  t.same(problems({ GITHUB_APP_ID: '0' }), [
    'GITHUB_APP_ID: expected a whole number of at least 1 (got 0)',
    'GITHUB_APP_SLUG / GITHUB_APP_PRIVATE_KEY(_FILE): set all three of GITHUB_APP_ID, GITHUB_APP_SLUG and GITHUB_APP_PRIVATE_KEY(_FILE) to use a GitHub App, or none (GITHUB_APP_ID is set)',
  ])
  // A review: with one of the trio wrong, the key was not checked at all.
  t.same(problems({ GITHUB_APP_ID: 'abc', GITHUB_APP_SLUG: 'Bad_Slug', GITHUB_APP_PRIVATE_KEY: 'garbage' }), [
    'GITHUB_APP_ID: expected a whole number (got "abc")',
    'GITHUB_APP_SLUG: expected a GitHub App slug: lowercase letters, digits and hyphens (got "Bad_Slug")',
    ...problems({ GITHUB_APP_ID: '1', GITHUB_APP_SLUG: 'ok', GITHUB_APP_PRIVATE_KEY: 'garbage' }),
  ])
  t.match(
    problems({ GITHUB_APP_ID: '0', GITHUB_APP_SLUG: 'ok', GITHUB_APP_PRIVATE_KEY_FILE: '/nonexistent' }),
    [/^GITHUB_APP_ID: /, /^GITHUB_APP_PRIVATE_KEY_FILE: cannot read \/nonexistent \(ENOENT\)/],
  )
  // Ids past 2^53 would be rounded to another App's id.
  t.match(problems({ GITHUB_APP_ID: '99999999999999999999' }), [
    /^GITHUB_APP_ID: expected a whole number of at most 9007199254740991/,
  ])
  // A review: credentials in a malformed URL, in any shape, are not echoed.
  const leaky: [string, string][] = [
    ['DATABASE_URL', 'host=db user=app password=S3cretPW dbname=portico'],
    ['DATABASE_URL', 'postgresql+psycopg://app:ab/S3cret@db/portico'],
    ['DATABASE_URL', 'jdbc:postgresql://db/portico?user=app&password=S3cret'],
    ['REDIS_URL', 'unix:///tmp/redis.sock?password=S3cret'],
    ['REDIS_URL', ':S3cret@127.0.0.1:6379'],
    ['REDIS_URL', 'redis-cluster://default:S3c/ret@h:6379'],
    ['GITHUB_URL', `https://ghp_${'a'.repeat(36)}@github.example.com bad`],
    ['GITHUB_URL', `not a url ghp_${'a'.repeat(36)}`],
  ]
  for (const [key, value] of leaky) {
    const [problem] = problems({ [key]: value })
    t.match(problem, new RegExp(`^${key}: .*\\(got \\[hidden\\]\\)$`), `${key}=${value}`)
    t.notMatch(problem, /S3c|ghp_/, `${key}: nothing of the value`)
  }
  t.same(problems({ DATABASE_URL: 'mysql://u:pw@db/x' }), [
    'DATABASE_URL: expected a postgres:// or postgresql:// URL (got [hidden])',
  ])
})

t.test('every pattern in the schema is described in words', async (t) => {
  for (const [key, prop] of Object.entries(ConfigSchema.properties as Record<string, Prop>)) {
    if (prop.pattern) t.ok(prop.expects, `${key} has an expects`)
  }
})

t.test('every kind of schema failure, including kinds no setting uses yet, reads in words', async (t) => {
  const schema = Type.Object({
    a: Type.Integer({ minimum: 1, maximum: 9 }),
    b: Type.Integer({ exclusiveMinimum: 0 }),
    c: Type.Number({ exclusiveMaximum: 1 }),
    d: Type.String({ maxLength: 3 }),
    e: Type.String({ minLength: 1 }),
    f: Type.String({ format: 'uri' }),
    g: Type.Enum({ X: 'x', Y: 'y' }),
    h: Type.Integer({ multipleOf: 5 }),
    i: Type.String({ pattern: '^a$' }),
    j: Type.Literal('only'),
    k: Type.Number({ minimum: 0.5 }),
    l: Type.Integer({ exclusiveMaximum: 10 }),
  })
  const value = {
    a: 10,
    b: 0,
    c: 1,
    d: 'long',
    e: '',
    f: 'nope',
    g: 'z',
    h: 7,
    i: 'b',
    j: 'other',
    k: 0,
    l: 10,
  }
  const words: Record<string, string> = {}
  for (const error of Value.Errors(schema, value)) words[error.path.slice(1)] ??= expectedInWords(error)
  t.same(words, {
    a: 'expected a whole number of at most 9',
    b: 'expected a whole number greater than 0',
    c: 'expected a number less than 1',
    d: 'expected at most 3 characters',
    e: 'expected at least 1 character',
    f: 'expected a URL',
    g: 'expected one of x, y',
    h: 'expected a multiple of 5',
    i: 'expected a value of the form the configuration table describes',
    j: 'expected only',
    k: 'expected a number of at least 0.5',
    l: 'expected a whole number less than 10',
  })
})
