import { randomBytes, randomInt } from 'node:crypto'
import t from 'tap'
import { classifyToken, redactFieldName, redactSecrets, truncateMessage } from '../src/tokens.js'

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

function randomFrom(alphabet: string, length: number): string {
  let out = ''
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)]
  return out
}

const hex40 = (): string => randomBytes(20).toString('hex')

/** Random credentials of every kind, each with the text expected in its place after redaction. */
const TOKEN_KINDS: ReadonlyArray<readonly [string, () => [token: string, expected: string]]> = [
  ...(['ghp', 'gho', 'ghu', 'ghs', 'ghr'] as const).map(
    (prefix) =>
      [
        prefix,
        (): [string, string] => [`${prefix}_${randomFrom(ALNUM, randomInt(20, 80))}`, '[REDACTED]'],
      ] as const,
  ),
  ['github_pat', () => [`github_pat_${randomFrom(`${ALNUM}_`, randomInt(22, 100))}`, '[REDACTED]']],
  [
    'hex after "token"',
    () => {
      const hex = hex40()
      return [`token ${hex}`, 'token [REDACTED]']
    },
  ],
  [
    'hex after "Bearer"',
    () => {
      const hex = hex40()
      return [`Bearer ${hex}`, 'Bearer [REDACTED]']
    },
  ],
  [
    'hex as x-access-token',
    () => [`x-access-token:${hex40()}@github.com`, 'x-access-token:[REDACTED]@github.com'],
  ],
  [
    'token in a clone URL',
    () => [`https://x-access-token:${hex40()}@github.com/o/r.git`, 'https://[REDACTED]@github.com/o/r.git'],
  ],
  ['authorization header', () => [`Authorization: token ${hex40()}`, 'Authorization: token [REDACTED]']],
  [
    'basic credentials',
    () => [
      `Basic ${Buffer.from(`${randomFrom(ALNUM, 8)}:${randomFrom(ALNUM, 20)}`).toString('base64')}`,
      'Basic [REDACTED]',
    ],
  ],
  ['access_token param', () => [`?access_token=${randomFrom(ALNUM, 30)}`, '?access_token=[REDACTED]']],
  ['client_secret param', () => [`&client_secret=${randomFrom(ALNUM, 30)}`, '&client_secret=[REDACTED]']],
]

// Surrounding text: words that trigger no rule, including bare commit SHAs that must survive.
const WORDS = [
  'deploy',
  'failed',
  'HEAD',
  'is',
  'now',
  'at',
  'clone',
  'of',
  'repo',
  '502',
  'é',
  '漢字',
  'push',
]
const SEPARATORS = [' ', ', ', '. ', '\n', ' (', ') ', ' "', '" ', '\t', ' [', '] ']

function randomText(): string {
  let out = ''
  const words = randomInt(0, 12)
  for (let i = 0; i < words; i++) {
    out += SEPARATORS[randomInt(SEPARATORS.length)]
    out += randomInt(6) === 0 ? hex40() : WORDS[randomInt(WORDS.length)]
  }
  return out + SEPARATORS[randomInt(SEPARATORS.length)]
}

t.test('classifyToken', async (t) => {
  const table: Array<[string, string]> = [
    ['ghp_16C7e42F292c6912E7710c838347Ae178B4a', 'classic-pat'],
    [`github_pat_11ABCDEFG0${'a'.repeat(72)}`, 'fine-grained-pat'],
    ['gho_16C7e42F292c6912E7710c838347Ae178B4a', 'oauth'],
    ['ghu_16C7e42F292c6912E7710c838347Ae178B4a', 'user-to-server'],
    ['ghs_16C7e42F292c6912E7710c838347Ae178B4a', 'server-to-server'],
    ['ghr_1B4a2e77838347a7E420ce178F2E7c6912E169246c34E1ccbF66C46812d16D5B1A9Dc86A1498', 'refresh'],
    [hex40(), 'unknown'],
    ['', 'unknown'],
    ['GHP_uppercase', 'unknown'],
    ['ghx_16C7e42F292c6912E7710c838347Ae178B4a', 'unknown'],
    [' ghp_leading_space', 'unknown'],
    ['github_16C7e42F292c6912E7710c838347Ae178B4a', 'unknown'],
  ]
  for (const [token, kind] of table) t.equal(classifyToken(token), kind, `${token.slice(0, 12)}… is ${kind}`)
})

t.test('redactSecrets: random tokens in random text are removed, the rest is preserved', async (t) => {
  let failures = 0
  for (let round = 0; round < 40; round++) {
    for (const [kind, make] of TOKEN_KINDS) {
      const [token, expected] = make()
      const before = randomText()
      const after = randomText()
      const output = redactSecrets(before + token + after)
      if (output !== before + expected + after) {
        failures++
        t.fail(`${kind}: ${JSON.stringify(before + token + after)} → ${JSON.stringify(output)}`)
      }
    }
  }
  t.equal(failures, 0)
})

t.test('redactSecrets: several tokens in one text', async (t) => {
  const tokens = TOKEN_KINDS.map(([, make]) => make())
  const input = tokens.map(([token]) => token).join(' and ')
  t.equal(redactSecrets(input), tokens.map(([, expected]) => expected).join(' and '))
})

t.test('redactSecrets: tokens glued to other text are still removed', async (t) => {
  const token = `ghp_${randomFrom(ALNUM, 36)}`
  t.notMatch(redactSecrets(`prefix${token}`), token)
  t.notMatch(redactSecrets(`x=${token}&y`), token)
  t.notMatch(redactSecrets(`"${token}"`), token)
  t.equal(redactSecrets(`${token}.`), '[REDACTED].')
})

t.test('redactSecrets: commit SHAs and ordinary text are preserved', async (t) => {
  const sha = hex40()
  const keep = [
    `HEAD is now at ${sha} Merge pull request #1`,
    `commit ${sha}`,
    `${sha}`,
    `sha=${sha}`,
    `https://github.com/o/r/commit/${sha}`,
    'ghp_short',
    'git@github.com:owner/repo.git',
    'ssh://git@github.com/owner/repo.git',
    'https://github.com/owner/repo',
    'basic setup finished',
    'Basic authentication is required',
    'the bearer of bad news',
    'tokens were refreshed',
    '',
  ]
  for (const text of keep) t.equal(redactSecrets(text), text, JSON.stringify(text))
  t.equal(redactSecrets(`HEAD is now at ${sha}; token ${sha}`), `HEAD is now at ${sha}; token [REDACTED]`)
})

t.test('redactSecrets: URL credentials', async (t) => {
  const cases: Array<[string, string]> = [
    ['https://user:secret@host.example/path', 'https://[REDACTED]@host.example/path'],
    [
      'fatal: could not read https://alice:p%40ss@github.com/o/r',
      'fatal: could not read https://[REDACTED]@github.com/o/r',
    ],
    ['https://ghp_abcdefghijklmnopqrstuvwxyz@github.com/o/r.git', 'https://[REDACTED]@github.com/o/r.git'],
    ['https://tokenonly@github.com/o/r.git', 'https://[REDACTED]@github.com/o/r.git'],
    ['http://u:p@127.0.0.1:4010/o/r', 'http://[REDACTED]@127.0.0.1:4010/o/r'],
    ['redis://:hunter2@redis:6379/0', 'redis://[REDACTED]@redis:6379/0'],
    ['postgres://app:pw@db/app?sslmode=require', 'postgres://[REDACTED]@db/app?sslmode=require'],
  ]
  for (const [input, expected] of cases) t.equal(redactSecrets(input), expected, input)
})

t.test('redactSecrets: headers, query strings, form values', async (t) => {
  const cases: Array<[string, string]> = [
    ['Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc', 'Authorization: Bearer [REDACTED]'],
    ['authorization: token abc123', 'authorization: token [REDACTED]'],
    ['Authorization: abc123 (bad)', 'Authorization: [REDACTED] (bad)'],
    ['{"authorization":"Basic dXNlcjpwYXNz"}', '{"authorization":"Basic [REDACTED]"}'],
    ['Proxy-Authorization: Basic dXNlcjpwYXNz', 'Proxy-Authorization: Basic [REDACTED]'],
    ['Cookie: session=abc; other=def\nnext', 'Cookie: [REDACTED]\nnext'],
    ['GET /cb?code=1&access_token=abc&x=2', 'GET /cb?code=1&access_token=[REDACTED]&x=2'],
    ['client_id=id&client_secret=s3cr3t', 'client_id=id&client_secret=[REDACTED]'],
    ['password=hunter2 user=bob', 'password=[REDACTED] user=bob'],
    ['GITHUB_TOKEN=abc123', 'GITHUB_TOKEN=[REDACTED]'],
    ['refresh_token=r1#frag', 'refresh_token=[REDACTED]#frag'],
    [
      '{"access_token":"opaque-value","token_type":"bearer"}',
      '{"access_token":"[REDACTED]","token_type":"bearer"}',
    ],
    ['Basic dXNlcjpwYXNz', 'Basic [REDACTED]'],
    ['token: 0123456789abcdef0123456789abcdef01234567', 'token: [REDACTED]'],
  ]
  for (const [input, expected] of cases) t.equal(redactSecrets(input), expected, input)
})

t.test('redactSecrets is idempotent', async (t) => {
  for (let i = 0; i < 50; i++) {
    const text = TOKEN_KINDS.map(([, make]) => randomText() + make()[0]).join('')
    const once = redactSecrets(text)
    t.equal(redactSecrets(once), once)
  }
})

t.test('truncateMessage', async (t) => {
  t.equal(truncateMessage('short'), 'short')
  t.equal(truncateMessage('x'.repeat(500)), 'x'.repeat(500))
  const long = truncateMessage('x'.repeat(501))
  t.equal(long.length, 500)
  t.ok(long.endsWith('…'))
  t.equal(truncateMessage('abcdef', 4), 'abc…')
  t.equal(truncateMessage('abcdef', 1), '…')
  t.equal(truncateMessage('abcdef', 0), '')
  t.equal(truncateMessage('ab😀cd', 4), 'ab…', 'never splits a surrogate pair')

  const token = `ghp_${randomFrom(ALNUM, 36)}`
  t.equal(truncateMessage(`failed: ${token}`, 500), 'failed: [REDACTED]', 'redacts')
  t.notMatch(truncateMessage(`${'x'.repeat(10)} ${token}`, 30), /ghp_/, 'redacts before truncating')

  for (let i = 0; i < 300; i++) {
    const max = randomInt(0, 120)
    const text = randomText() + TOKEN_KINDS[randomInt(TOKEN_KINDS.length)]![1]()[0] + randomText()
    const out = truncateMessage(text, max)
    if (out.length > max) t.fail(`length ${out.length} > ${max}`)
    const full = redactSecrets(text)
    if (full.length <= max) {
      if (out !== full) t.fail('short messages are returned whole')
    } else if (max === 0) {
      if (out !== '') t.fail('max 0 gives an empty string')
    } else if (!(out.endsWith('…') && full.startsWith(out.slice(0, -1)))) {
      t.fail(`bad truncation ${JSON.stringify(out)}`)
    }
  }
  t.pass('random truncations within bounds')
})

t.test('redactSecrets stays linear on adversarial input', async (t) => {
  const inputs = [
    'a-'.repeat(100_000),
    'x-access-token:'.repeat(15_000),
    'https://'.concat('a:'.repeat(100_000)),
    'authorization: '.repeat(20_000),
    'Basic '.repeat(30_000),
    'token='.concat('.'.repeat(200_000)),
    'ghp_'.repeat(50_000),
    // A review's example: "token" and a long run of blanks backtracked quadratically.
    `token${' '.repeat(200_000)}x`,
    `token${'\t'.repeat(100_000)}:${' '.repeat(100_000)}x`,
    'token '.repeat(40_000),
  ]
  for (const input of inputs) {
    const start = performance.now()
    redactSecrets(input)
    const ms = performance.now() - start
    t.ok(ms < 1000, `${JSON.stringify(input.slice(0, 16))}… took ${ms.toFixed(0)}ms`)
  }
})

t.test('redactFieldName: a key holding a token is redacted whole, whatever surrounds it', async (t) => {
  const hex = randomFrom('0123456789abcdef', 40)
  // A review's examples: padding around a legacy token got past a bare-40-hex check.
  for (const key of [hex, ` ${hex}`, `${hex}\n`, `"${hex}"`, `pat:${hex}`, `${hex},`, hex.toUpperCase()]) {
    t.equal(redactFieldName(key), '[REDACTED]', JSON.stringify(key))
  }
  t.equal(redactFieldName(`x ghp_${randomFrom(ALNUM, 36)} y`), 'x [REDACTED] y')
  // Glued to other hex digits, or two tokens in a row (a second review's examples).
  for (const key of [`0${hex}`, `${hex}f`, `${hex}${hex}`]) t.equal(redactFieldName(key), '[REDACTED]', key)
  for (const key of [
    'colour',
    'repo_url',
    'a'.repeat(39),
    `g${'0'.repeat(39)}`,
    `${'0'.repeat(20)}-${'0'.repeat(20)}`,
  ]) {
    t.equal(redactFieldName(key), key, `${key.slice(0, 12)}: not token-like`)
  }
  t.equal(redactFieldName('x'.repeat(1_000_000)), 'x'.repeat(200), 'a name as long as a body is cut first')
  t.equal(redactFieldName(`token${' '.repeat(1_000_000)}x`), `token${' '.repeat(195)}`)
})
