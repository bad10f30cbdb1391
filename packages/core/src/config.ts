import { createPrivateKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import proxyAddr from '@fastify/proxy-addr'
import { type Static, type TSchema, Type } from '@sinclair/typebox'
import { type ValueError, ValueErrorType } from '@sinclair/typebox/errors'
import { Value } from '@sinclair/typebox/value'
import { type Keyring, parseKeyring } from './crypto.js'
import { QUEUE_NAMES, type QueueName } from './queues.js'
import { redactSecrets } from './tokens.js'

/**
 * A string setting. `expects` says in words what `pattern` accepts: the configuration table and
 * the error for a value that does not match show it instead of the regular expression.
 */
const Str = (
  description: string,
  options: { default?: string; pattern?: string; expects?: string; minLength?: number } = {},
) => Type.String({ description, ...options })
/** Node's timers take at most 2³¹−1 ms (a longer delay fires after 1 ms, with a warning). */
const MAX_TIMER_MS = 2_147_483_647
const MAX_TIMER_S = Math.floor(MAX_TIMER_MS / 1000)
const Int = (description: string, defaultValue: number, minimum = 0, maximum = Number.MAX_SAFE_INTEGER) =>
  Type.Integer({ description, default: defaultValue, minimum, maximum })
const Bool = (description: string, defaultValue: boolean) =>
  Type.Boolean({ description, default: defaultValue })
const Opt = <T extends TSchema>(schema: T) => Type.Optional(schema)
const URL_PATTERN = '^https?://[^\\s/]+(/[^\\s]*)?$'

/**
 * Every environment variable Portico reads, with its default and meaning. The README's
 * configuration table and `.env.example` are generated from this schema (`npm run env:docs`).
 */
export const ConfigSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('test'), Type.Literal('production')], {
    default: 'development',
    description: 'development, test or production. In production every secret must be set explicitly.',
  }),
  HOST: Str('Interface the API listens on.', { default: '127.0.0.1' }),
  PORT: Int('Port the API listens on.', 3000, 1, 65535),
  REQUEST_TIMEOUT_MS: Int(
    'Longest the API waits to receive a whole request (headers and body) before answering 408 and closing the connection: a client that never finishes a body cannot hold it in memory.',
    30000,
    1000,
    MAX_TIMER_MS,
  ),
  PUBLIC_URL: Str(
    'Public origin of the API; OAuth redirect URI base and cookie Secure flag (https → Secure).',
    {
      default: 'http://localhost:3000',
      pattern: URL_PATTERN,
      expects: 'an http(s) URL such as https://portico.example.com',
    },
  ),
  TRUST_PROXY: Str(
    'Trust X-Forwarded-* headers: false, true, a hop count, or comma-separated proxy IPs/CIDRs.',
    {
      default: 'false',
    },
  ),
  ALLOWED_ORIGINS: Str(
    'Extra origins (comma-separated) allowed to make cookie-authenticated writes (CSRF check).',
    {
      default: '',
    },
  ),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info', description: 'pino log level: fatal, error, warn, info, debug, trace or silent.' },
  ),
  DATABASE_URL: Str('PostgreSQL connection string.', {
    default: 'postgres://postgres@127.0.0.1:5432/portico',
    pattern: '^postgres(ql)?://',
    expects: 'a postgres:// or postgresql:// URL',
  }),
  DATABASE_POOL_MAX: Int('Maximum connections in each process’s PostgreSQL pool.', 10, 1, 1000),
  REDIS_URL: Str('Redis connection string (sessions and queues).', {
    default: 'redis://127.0.0.1:6379',
    pattern: '^rediss?://',
    expects: 'a redis:// or rediss:// URL such as redis://127.0.0.1:6379',
  }),
  REDIS_PREFIX: Str(
    'Prefix of every Redis key Portico writes (queues, sessions, rate limits, caches, write pacing); a Redis Cluster hash tag keeps them in one slot.',
    {
      default: '{portico}',
      pattern: '^\\{[A-Za-z0-9:_.-]{1,64}\\}$',
      expects: 'a name in braces, such as {portico} (1–64 of A-Z a-z 0-9 : _ . -)',
    },
  ),
  QUEUE_PREFIX: Opt(
    Str(
      'Deprecated alias of REDIS_PREFIX (it always prefixed more than queues); used when REDIS_PREFIX is unset.',
      {
        pattern: '^\\{[A-Za-z0-9:_.-]{1,64}\\}$',
        expects: 'a name in braces, such as {portico} (1–64 of A-Z a-z 0-9 : _ . -)',
      },
    ),
  ),
  SESSION_SECRET: Opt(
    Str('Secret signing the session cookie (≥ 32 characters). Required in production.', { minLength: 32 }),
  ),
  TOKEN_ENCRYPTION_KEYS: Opt(
    Str(
      'Token keyring: comma-separated keyId:base64-32-bytes; the first encrypts, all decrypt. Required in production.',
    ),
  ),
  GITHUB_URL: Str(
    'GitHub web URL (OAuth pages and git over HTTPS). A GHES or the bundled simulator also work.',
    {
      default: 'https://github.com',
      pattern: URL_PATTERN,
      expects: 'an http(s) URL such as https://github.com',
    },
  ),
  GITHUB_API_URL: Str('GitHub REST API base URL (GHES: https://HOST/api/v3).', {
    default: 'https://api.github.com',
    pattern: URL_PATTERN,
    expects: 'an http(s) URL such as https://api.github.com',
  }),
  GITHUB_OAUTH_CLIENT_ID: Opt(Str('OAuth app client id. Unset: sign-in answers 503 OAUTH_NOT_CONFIGURED.')),
  GITHUB_OAUTH_CLIENT_SECRET: Opt(Str('OAuth app client secret.')),
  GITHUB_OAUTH_SCOPES: Str(
    'Scopes requested at sign-in (space-separated). Portico never writes workflow files, so no `workflow`.',
    { default: 'repo read:org' },
  ),
  GH_TOKEN: Opt(
    Str(
      'Service token used when no user is signed in (if the fallback is allowed) and by /health. Not needed when a GitHub App is configured (its installation on GH_REPO’s owner acts instead).',
    ),
  ),
  GITHUB_APP_ID: Opt(
    Type.Integer({
      description:
        'GitHub App id (Settings → Developer settings → GitHub Apps). Unset, with the slug and key: connecting through the App answers 503 GITHUB_APP_NOT_CONFIGURED.',
      minimum: 1,
      // Larger ids would be rounded: JSON numbers are doubles.
      maximum: Number.MAX_SAFE_INTEGER,
    }),
  ),
  GITHUB_APP_SLUG: Opt(
    Str('GitHub App slug, as in {GITHUB_URL}/apps/{slug}; builds the install link.', {
      pattern: '^[a-z0-9][a-z0-9-]{0,99}$',
      expects: 'a GitHub App slug: lowercase letters, digits and hyphens',
    }),
  ),
  GITHUB_APP_PRIVATE_KEY: Opt(
    Str('GitHub App private key (PEM; \\n escapes accepted). Or GITHUB_APP_PRIVATE_KEY_FILE.'),
  ),
  GITHUB_APP_PRIVATE_KEY_FILE: Opt(Str('Path of a file holding the GitHub App private key (PEM).')),
  ALLOW_SERVICE_TOKEN_FALLBACK: Bool(
    'Let anonymous READS act with GH_TOKEN (never writes, never the ACCESS_ORG gate). Logs a warning in production.',
    false,
  ),
  STATIC_DIR: Opt(
    Str(
      'Folder of a frontend build (with index.html) the API serves outside its own prefixes, with history-mode fallback. Unset: GET / answers a small landing page.',
    ),
  ),
  GH_REPO: Opt(
    Str('Specs repository as owner/repo. Unset: the pods API answers 503 PODS_NOT_CONFIGURED.', {
      pattern: '^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$',
      expects: 'owner/repo',
    }),
  ),
  SPECS_PATH: Str('Folder of the specs repository holding {customer}/{env}/spec.yml.', {
    default: 'infra',
    pattern: '^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$',
    expects: 'a relative folder path such as infra',
  }),
  WORKFLOW_BRANCH: Str('Branch pods are read from and deploy pull requests target.', { default: 'main' }),
  ACCESS_ORG: Opt(Str('GitHub organisation whose active members alone may read its private repositories.')),
  OPERATOR_GITHUB_IDS: Str(
    'Comma-separated numeric GitHub user ids allowed on Bull Board (/admin/queues): the source of truth for operators.',
    { default: '', pattern: '^[0-9, ]*$', expects: 'comma-separated numbers' },
  ),
  OPERATOR_LOGINS: Str(
    'Deprecated: comma-separated GitHub logins allowed on Bull Board. Logins can be renamed and re-registered; use OPERATOR_GITHUB_IDS (a production warning is logged).',
    { default: '' },
  ),
  RATE_LIMIT_WINDOW_SECONDS: Int('Window of the per-client rate limits, in seconds.', 60, 1, 86400),
  RATE_LIMIT_AUTH_MAX: Int('Requests per window and client to /auth/* (sign-in, callback, logout).', 30, 1),
  RATE_LIMIT_CONNECTIONS_MAX: Int('Repository connection POSTs per window and client.', 10, 1),
  RATE_LIMIT_DEPLOYS_MAX: Int('POST /api/pod requests per window and client.', 20, 1),
  RATE_LIMIT_WEBHOOKS_MAX: Int(
    'POST /webhooks/github deliveries per window and client IP (GitHub sends from a few shared addresses, so keep it high).',
    1000,
    1,
  ),
  GITHUB_WEBHOOK_SECRET: Opt(
    Str(
      'Secret of the GitHub webhook (repository hook or App webhook) signing deliveries to POST /webhooks/github. Unset: that route answers 503 WEBHOOKS_NOT_CONFIGURED.',
      { minLength: 1 },
    ),
  ),
  GITHUB_WEBHOOK_SECRET_PREVIOUS: Opt(
    Str(
      'The previous webhook secret, also accepted while a rotation is under way (see docs/webhooks.md); unset it once GitHub uses the new one.',
      { minLength: 1 },
    ),
  ),
  APPLY_TIMEOUT_HOURS: Int(
    'Hours after a deploy pull request is merged during which Portico waits for checks on its merge commit; with none by then it stays merged.',
    24,
    1,
    87_600,
  ),
  RECONCILE_INTERVAL_SECONDS: Int(
    'How often the reconciler checks deployments whose pull request is open or merged (conditional requests: unchanged ones cost no counted GitHub call).',
    300,
    10,
    MAX_TIMER_S,
  ),
  CLONE_ROOT: Str('Directory holding repository clones.', { default: './tmp' }),
  CLONE_TTL_HOURS: Int('Hours a clone is kept before the expiry sweep removes it.', 168, 1, 87_600),
  CLONE_TIMEOUT_SECONDS: Int('Wall-clock limit of one clone.', 300, 1, MAX_TIMER_S),
  CLONE_MAX_MB: Int('Size limit of one clone on disk, in MiB.', 500, 1),
  CLONE_MAX_FILES: Int(
    'Limit on the entries of one clone’s tree (git ls-tree), checked before checkout.',
    100000,
    1,
  ),
  ANALYSIS_TIMEOUT_SECONDS: Int(
    'Wall-clock budget of one repository analysis (run off the main thread); past it the summary is marked timed_out.',
    120,
    1,
    MAX_TIMER_S,
  ),
  WORKER_HEALTH_PORT: Int(
    'Port of the worker’s health listener (/live, /ready, /metrics); 0 turns it off.',
    0,
    0,
    65535,
  ),
  WORKER_HEALTH_HOST: Str('Interface the worker’s health listener binds to.', { default: '127.0.0.1' }),
  WORKER_MAX_EVENT_LOOP_BLOCK_MS: Int(
    'The worker’s /live fails when its event loop was blocked longer than this, in ms.',
    10000,
    100,
    MAX_TIMER_MS,
  ),
  WORKER_QUEUES: Str(
    'Queues this worker consumes: all, or a comma-separated subset of clone,deploy,maintenance,webhooks.',
    {
      default: 'all',
    },
  ),
  WORKER_CONCURRENCY: Int('Jobs processed at once per queue by one worker process.', 4, 1, 100),
  WORKER_LOCK_MS: Int(
    'How long a worker holds a job’s lock between renewals; a crashed worker’s job is redelivered after it lapses.',
    30000,
    1000,
    MAX_TIMER_MS,
  ),
  WORKER_STALLED_INTERVAL_MS: Int(
    'How often a worker looks for jobs whose lock lapsed (stalled jobs) and returns them to the queue.',
    30000,
    500,
    MAX_TIMER_MS,
  ),
  SHUTDOWN_TIMEOUT_MS: Int(
    'How long a stopping process waits for in-flight work before closing.',
    25000,
    0,
    MAX_TIMER_MS,
  ),
  DEPLOY_WAIT_MS: Int(
    'How long POST /api/pod waits for its deploy job before answering 202.',
    10000,
    0,
    MAX_TIMER_MS,
  ),
  GITHUB_WRITE_SPACING_MS: Int(
    'Minimum gap between GitHub write calls made with one token (GitHub asks for ≥ 1 s).',
    1000,
    0,
    60000,
  ),
  METRICS_TOKEN: Opt(
    Str(
      'Bearer token for GET /metrics on the API (Authorization: Bearer …). Unset: /metrics answers 403 unless scraped through METRICS_PORT.',
      { minLength: 16 },
    ),
  ),
  METRICS_PORT: Opt(
    Type.Integer({
      description:
        'Separate port serving the API metrics at /metrics without a token (bind it to a private network only).',
      minimum: 1,
      maximum: 65535,
    }),
  ),
  PODS_REVALIDATE_SECONDS: Int(
    'How long a signed-in caller is served the cached pods listing and specs before GitHub is asked again with their token (conditional, uncounted). 0: on every request.',
    10,
    0,
    3600,
  ),
  API_READ_CACHE_MS: Int(
    'How long (ms) an API process may answer reads from its own memory: sessions, project access and connection status. An entry is dropped as soon as Redis (sessions) or Postgres (LISTEN/NOTIFY) reports a change to it; this bounds staleness if that notice is lost. 0: no cache.',
    5000,
    0,
    60_000,
  ),
  OTEL_EXPORTER_OTLP_ENDPOINT: Opt(
    Str('OTLP/HTTP collector base URL (traces go to {url}/v1/traces). Unset: no tracing code is loaded.', {
      pattern: URL_PATTERN,
      expects: 'an http(s) URL such as http://otel-collector:4318',
    }),
  ),
  OTEL_SERVICE_NAME: Opt(
    Str('Service name on traces (default portico-api / portico-worker).', {
      pattern: '^[A-Za-z0-9._-]{1,64}$',
      expects: '1–64 of A-Z a-z 0-9 . _ -',
    }),
  ),
})

type RawConfig = Static<typeof ConfigSchema>

/** Validated configuration plus values parsed from it. */
export type Config = Readonly<
  RawConfig & {
    SESSION_SECRET: string
    TOKEN_ENCRYPTION_KEYS: string
    keyring: Keyring
    trustProxy: boolean | number | string[]
    allowedOrigins: string[]
    operatorLogins: string[]
    /** OPERATOR_GITHUB_IDS parsed. */
    operatorGithubIds: number[]
    workerQueues: QueueName[]
    cloneRoot: string
    oauthConfigured: boolean
    /** Sentences about deprecated variables in use; each process logs them at start. */
    deprecations: string[]
    /** The GitHub App, when GITHUB_APP_ID, GITHUB_APP_SLUG and a private key are all set. */
    githubApp: GithubAppSettings | null
  }
>

/** GitHub App credentials parsed from the GITHUB_APP_* variables. */
export interface GithubAppSettings {
  appId: number
  slug: string
  /** PEM (PKCS#1 or PKCS#8), checked to be an RSA private key at start-up. */
  privateKey: string
}

/**
 * Reads and checks the GitHub App settings: all of id, slug and key, or none. A key that is not
 * an RSA private key in PEM is a start-up error (GitHub Apps sign their JWTs with RS256).
 */
function parseGithubApp(
  raw: Record<string, unknown>,
  problems: string[],
  reported: (key: string) => boolean,
): GithubAppSettings | null {
  const id = raw.GITHUB_APP_ID
  const slug = raw.GITHUB_APP_SLUG
  let pem = raw.GITHUB_APP_PRIVATE_KEY as string | undefined
  const file = raw.GITHUB_APP_PRIVATE_KEY_FILE as string | undefined
  if (pem !== undefined && file !== undefined) {
    problems.push('GITHUB_APP_PRIVATE_KEY / GITHUB_APP_PRIVATE_KEY_FILE: set one, not both')
    return null
  }
  if (file !== undefined) {
    try {
      pem = readFileSync(file, 'utf8')
    } catch (err) {
      problems.push(
        `GITHUB_APP_PRIVATE_KEY_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      )
      return null
    }
  }
  // A value already reported as wrong was given: the trio message names only the variables
  // missing, and the key is still checked, so every problem is told at once, each once.
  const wrong = ['GITHUB_APP_ID', 'GITHUB_APP_SLUG'].some(reported)
  const trio: [string, unknown][] = [
    ['GITHUB_APP_ID', id ?? (reported('GITHUB_APP_ID') || undefined)],
    ['GITHUB_APP_SLUG', slug ?? (reported('GITHUB_APP_SLUG') || undefined)],
    ['GITHUB_APP_PRIVATE_KEY(_FILE)', pem],
  ]
  const missing = trio.filter(([, v]) => v === undefined).map(([name]) => name)
  if (missing.length === 3) return null
  if (missing.length > 0) {
    const set = trio.filter(([, v]) => v !== undefined).map(([name]) => name)
    problems.push(
      `${missing.join(' / ')}: set all three of GITHUB_APP_ID, GITHUB_APP_SLUG and GITHUB_APP_PRIVATE_KEY(_FILE) to use a GitHub App, or none (${set.join(' and ')} ${set.length > 1 ? 'are' : 'is'} set)`,
    )
    return null
  }
  // Environments often carry a PEM on one line with literal \n escapes.
  const key = String(pem).replace(/\\n/g, '\n').trim()
  try {
    const parsed = createPrivateKey({ key, format: 'pem' })
    if (parsed.asymmetricKeyType !== 'rsa') throw new Error(`a ${parsed.asymmetricKeyType} key, not RSA`)
  } catch (err) {
    problems.push(
      `GITHUB_APP_PRIVATE_KEY: not a PEM RSA private key as GitHub issues it (${(err as Error).message.slice(0, 120)})`,
    )
    return null
  }
  if (wrong) return null
  return { appId: Number(id), slug: String(slug), privateKey: `${key}\n` }
}

/** Thrown when the environment is invalid; the message names every bad variable. */
export class ConfigError extends Error {
  readonly problems: string[]
  constructor(problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

/** Development-only defaults for secrets; production refuses to start without real ones. */
const DEV_SECRETS = {
  SESSION_SECRET: 'portico-development-session-secret-not-for-production',
  TOKEN_ENCRYPTION_KEYS: 'dev:cG9ydGljby1kZXZlbG9wbWVudC1rZXktMzJieXRlcyE=',
} as const

const list = (value: string): string[] =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)

/**
 * Whether @fastify/proxy-addr (what Fastify's `trustProxy` compiles a list with) accepts `entry`:
 * an IP address, a CIDR, an address with a contiguous netmask, or one of its named ranges. Asking
 * the library itself keeps start-up from crashing on a value this check let through.
 */
function isProxyAddress(entry: string): boolean {
  try {
    proxyAddr.compile([entry])
    return true
  } catch {
    return false
  }
}

function parseTrustProxy(value: string): boolean | number | string[] {
  const v = value.trim().toLowerCase()
  if (v === 'true') return true
  if (v === 'false' || v === '') return false
  if (/^\d+$/.test(v)) return Number(v)
  return list(value)
}

/**
 * Validates an environment (normally `process.env`) against {@link ConfigSchema}.
 * Empty strings count as unset. Throws {@link ConfigError} listing every problem at once.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(ConfigSchema.properties)) {
    const value = env[key]
    if (value !== undefined && value.trim() !== '') raw[key] = value.trim()
  }
  const deprecations: string[] = []
  if (raw.QUEUE_PREFIX !== undefined) {
    if (raw.REDIS_PREFIX === undefined) raw.REDIS_PREFIX = raw.QUEUE_PREFIX
    deprecations.push(
      'QUEUE_PREFIX is deprecated: it prefixes every Redis key, not only queues; set REDIS_PREFIX instead',
    )
  }
  const prefixConflict =
    raw.QUEUE_PREFIX !== undefined && raw.REDIS_PREFIX !== raw.QUEUE_PREFIX
      ? 'REDIS_PREFIX / QUEUE_PREFIX: both set, to different values; set only REDIS_PREFIX'
      : undefined
  const production = (raw.NODE_ENV ?? 'development') === 'production'
  const problems: string[] = prefixConflict ? [prefixConflict] : []
  /** The first problem found with a variable is its only one: a value wrong once is reported once. */
  const isReported = (key: string) =>
    problems.some((p) => p.slice(0, p.indexOf(':')).split(' / ').includes(key))
  const report = (key: string, text: string) => {
    if (!isReported(key)) problems.push(`${key}: ${text}`)
  }
  /** The offending entries of a comma-separated list, quoted. */
  const entries = (values: string[]) => values.map((v) => JSON.stringify(v)).join(', ')
  for (const key of Object.keys(DEV_SECRETS) as (keyof typeof DEV_SECRETS)[]) {
    if (raw[key] !== undefined) continue
    if (production) report(key, 'required when NODE_ENV=production')
    else raw[key] = DEV_SECRETS[key]
  }
  if (production && raw.DATABASE_URL === undefined)
    report('DATABASE_URL', 'required when NODE_ENV=production')

  // TypeBox's conversion truncates "1.5" to 1: an integer setting must be written as one.
  for (const [key, prop] of Object.entries(ConfigSchema.properties as Record<string, { type?: string }>)) {
    if (prop.type === 'integer' && typeof raw[key] === 'string' && !/^-?\d+$/.test(raw[key] as string)) {
      report(key, `expected a whole number${got(key, raw[key])}`)
      delete raw[key]
    }
  }
  const trustProxy = parseTrustProxy(String(raw.TRUST_PROXY ?? 'false'))
  if (Array.isArray(trustProxy)) {
    const bad = trustProxy.filter((e) => !isProxyAddress(e))
    if (bad.length > 0)
      report(
        'TRUST_PROXY',
        `expected true, false, a hop count, or comma-separated IP addresses or CIDRs (got ${entries(bad)})`,
      )
  }
  const value = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, raw))
  for (const error of Value.Errors(ConfigSchema, value)) {
    const key = error.path.replace(/^\//, '') || '(root)'
    report(key, `${expectedInWords(error)}${key in raw ? got(key, raw[key]) : ''}`)
  }
  const config = value as RawConfig

  let keyring: Keyring | undefined
  try {
    keyring = parseKeyring(String(raw.TOKEN_ENCRYPTION_KEYS ?? ''))
  } catch (err) {
    // Production without keys was reported above ("required"): once is enough.
    report('TOKEN_ENCRYPTION_KEYS', (err as Error).message)
  }
  const workerQueues =
    config.WORKER_QUEUES === 'all' ? [...QUEUE_NAMES] : list(String(config.WORKER_QUEUES ?? ''))
  const unknownQueues = workerQueues.filter((q) => !(QUEUE_NAMES as readonly string[]).includes(q))
  if (unknownQueues.length > 0 || workerQueues.length === 0) {
    report(
      'WORKER_QUEUES',
      `expected all or a subset of ${QUEUE_NAMES.join(',')}${got('WORKER_QUEUES', config.WORKER_QUEUES)}`,
    )
  }
  const hasId = raw.GITHUB_OAUTH_CLIENT_ID !== undefined
  if (hasId !== (raw.GITHUB_OAUTH_CLIENT_SECRET !== undefined)) {
    problems.push('GITHUB_OAUTH_CLIENT_ID / GITHUB_OAUTH_CLIENT_SECRET: set both or neither')
  }
  const allowedOrigins = list(String(config.ALLOWED_ORIGINS ?? ''))
  const badOrigins = allowedOrigins.filter((origin) => !/^https?:\/\/[^/\s]+$/.test(origin))
  if (badOrigins.length > 0)
    report(
      'ALLOWED_ORIGINS',
      `expected comma-separated origins such as https://app.example.com (got ${entries(badOrigins)})`,
    )
  const badIds = list(String(config.OPERATOR_GITHUB_IDS ?? '')).filter(
    (id) => !/^[1-9][0-9]{0,15}$/.test(id) || !Number.isSafeInteger(Number(id)),
  )
  if (badIds.length > 0)
    report(
      'OPERATOR_GITHUB_IDS',
      `expected comma-separated GitHub user ids, each a whole number of at least 1 (got ${entries(badIds)})`,
    )
  const githubApp = parseGithubApp(raw, problems, isReported)
  if (problems.length > 0 || keyring === undefined) throw new ConfigError(problems)

  return Object.freeze({
    ...config,
    PUBLIC_URL: config.PUBLIC_URL.replace(/\/+$/, ''),
    GITHUB_URL: config.GITHUB_URL.replace(/\/+$/, ''),
    GITHUB_API_URL: config.GITHUB_API_URL.replace(/\/+$/, ''),
    SESSION_SECRET: String(raw.SESSION_SECRET),
    TOKEN_ENCRYPTION_KEYS: String(raw.TOKEN_ENCRYPTION_KEYS),
    keyring,
    trustProxy: parseTrustProxy(config.TRUST_PROXY),
    allowedOrigins,
    operatorLogins: list(config.OPERATOR_LOGINS).map((l) => l.toLowerCase()),
    operatorGithubIds: list(String(config.OPERATOR_GITHUB_IDS ?? '')).map(Number),
    workerQueues: workerQueues as QueueName[],
    cloneRoot: resolve(config.CLONE_ROOT),
    oauthConfigured: hasId,
    deprecations,
    githubApp,
  })
}

const SECRET_KEYS = new Set([
  'SESSION_SECRET',
  'TOKEN_ENCRYPTION_KEYS',
  'GITHUB_OAUTH_CLIENT_SECRET',
  'GH_TOKEN',
  'METRICS_TOKEN',
  'GITHUB_APP_PRIVATE_KEY',
  'GITHUB_WEBHOOK_SECRET',
  'GITHUB_WEBHOOK_SECRET_PREVIOUS',
])

/** The number of characters, in words. */
const characters = (n: unknown) => `${n} character${n === 1 ? '' : 's'}`

/** Words for the few string formats a setting could declare. */
const FORMATS: Record<string, string> = {
  uri: 'a URL',
  url: 'a URL',
  email: 'an email address',
  hostname: 'a host name',
  ipv4: 'an IPv4 address',
  ipv6: 'an IPv6 address',
  uuid: 'a UUID',
  date: 'a date such as 2024-01-31',
  'date-time': 'a date and time such as 2024-01-31T12:00:00Z',
}

/**
 * What a setting takes, in words, for one failure TypeBox found: its `expects`, the allowed
 * values of a union or enum, or the kind of value with the bound it broke. Never TypeBox's own
 * message (schema jargon such as "Expected integer to be greater or equal to 1") nor a regular
 * expression.
 */
export function expectedInWords(error: Pick<ValueError, 'type' | 'schema'>): string {
  const schema = error.schema as TSchema & {
    expects?: string
    anyOf?: { const?: unknown }[]
    enum?: unknown[]
    const?: unknown
    format?: string
    minimum?: number
    maximum?: number
    exclusiveMinimum?: number
    exclusiveMaximum?: number
    multipleOf?: number
    minLength?: number
    maxLength?: number
  }
  if (schema.expects) return `expected ${schema.expects}`
  const literals = schema.anyOf?.every((branch) => branch.const !== undefined)
    ? schema.anyOf.map((branch) => branch.const)
    : schema.enum
  if (literals?.length) return `expected one of ${literals.map(String).join(', ')}`
  if (schema.const !== undefined) return `expected ${String(schema.const)}`
  const T = ValueErrorType
  const kind = schema.type === 'integer' ? 'a whole number' : 'a number'
  switch (error.type) {
    case T.IntegerMinimum:
    case T.NumberMinimum:
      return `expected ${kind} of at least ${schema.minimum}`
    case T.IntegerMaximum:
    case T.NumberMaximum:
      return `expected ${kind} of at most ${schema.maximum}`
    case T.IntegerExclusiveMinimum:
    case T.NumberExclusiveMinimum:
      return `expected ${kind} greater than ${schema.exclusiveMinimum}`
    case T.IntegerExclusiveMaximum:
    case T.NumberExclusiveMaximum:
      return `expected ${kind} less than ${schema.exclusiveMaximum}`
    case T.IntegerMultipleOf:
    case T.NumberMultipleOf:
      return `expected a multiple of ${schema.multipleOf}`
    case T.Integer:
    case T.Number:
      return `expected ${kind}`
    case T.Boolean:
      return 'expected true or false'
    case T.StringMinLength:
      return `expected at least ${characters(schema.minLength)}`
    case T.StringMaxLength:
      return `expected at most ${characters(schema.maxLength)}`
    case T.StringFormat:
    case T.StringFormatUnknown:
      return `expected ${FORMATS[schema.format ?? ''] ?? `a value in the ${schema.format} format`}`
    case T.StringPattern:
      // Every pattern in ConfigSchema has an `expects` (a test holds it to that).
      return 'expected a value of the form the configuration table describes'
    case T.String:
      return 'expected text'
    default:
      return 'expected a value of the kind the configuration table describes'
  }
}

/**
 * " (got …)" after a problem: the value as given, or nothing for a secret (its value, even a
 * wrong one, must not reach logs) and "[hidden]" for a URL carrying a password.
 */
function got(key: string, value: unknown): string {
  if (SECRET_KEYS.has(key)) return ''
  // A malformed URL can carry credentials in any shape (`user:p/w@host`, `password=`, a token as
  // the user name, a libpq key=value string): anything that might is not echoed (a review).
  const text = String(value)
  if (/@|pass|pwd|secret|token|auth|key=/i.test(text) || redactSecrets(text) !== text)
    return ' (got [hidden])'
  return ` (got ${JSON.stringify(value)})`
}

/**
 * The named variables of the process environment, for child processes that must not inherit
 * the rest (secrets such as GH_TOKEN or TOKEN_ENCRYPTION_KEYS live there).
 */
export function inheritedEnv(
  names: readonly string[],
  env: Record<string, string | undefined> = process.env,
) {
  const picked: Record<string, string> = {}
  for (const name of names) {
    const value = env[name]
    if (value !== undefined) picked[name] = value
  }
  return picked
}
