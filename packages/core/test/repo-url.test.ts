import { randomInt } from 'node:crypto'
import t from 'tap'
import { AppError } from '../src/errors.js'
import { parseRepoUrl, type RepoRef } from '../src/repo-url.js'

const GH = 'https://github.com'
const SIM = 'http://127.0.0.1:4010'

function ref(base: string, host: string, owner: string, repo: string): RepoRef {
  return { owner, repo, host, cloneUrl: `${base}/${owner}/${repo}.git`, htmlUrl: `${base}/${owner}/${repo}` }
}

function isInvalidRepoUrl(err: unknown): boolean {
  return (
    err instanceof AppError &&
    err.statusCode === 400 &&
    err.code === 'INVALID_REPO_URL' &&
    err.message.startsWith('Repo URL must be a valid GitHub repository URL: ')
  )
}

t.test('accepted forms', async (t) => {
  const octo = ref(GH, 'github.com', 'octo-org', 'hello.world')
  const table: Array<[input: string, githubUrl: string, expected: RepoRef]> = [
    ['https://github.com/octo-org/hello.world', GH, octo],
    ['https://github.com/octo-org/hello.world.git', GH, octo],
    ['https://github.com/octo-org/hello.world/', GH, octo],
    ['https://github.com/octo-org/hello.world.git/', GH, octo],
    ['  https://github.com/octo-org/hello.world\n', GH, octo],
    ['HTTPS://GitHub.COM/octo-org/hello.world', GH, octo],
    ['https://github.com:443/octo-org/hello.world', GH, octo],
    ['git@github.com:octo-org/hello.world.git', GH, octo],
    ['git@github.com:octo-org/hello.world', GH, octo],
    ['ssh://git@github.com/octo-org/hello.world.git', GH, octo],
    ['ssh://git@github.com/octo-org/hello.world', GH, octo],
    ['ssh://git@github.com:22/octo-org/hello.world.git', GH, octo],
    ['https://github.com/octo-org/hello.world', `${GH}/`, octo],
    // github.com serves (and redirects) www.github.com; the result is pinned to github.com.
    ['https://www.github.com/octo-org/hello.world', GH, octo],
    ['https://WWW.GitHub.com/octo-org/hello.world.git', GH, octo],
    ['https://github.com/A/b', GH, ref(GH, 'github.com', 'A', 'b')],
    ['https://github.com/a1/.github', GH, ref(GH, 'github.com', 'a1', '.github')],
    ['https://github.com/a1/repo_name-2', GH, ref(GH, 'github.com', 'a1', 'repo_name-2')],
    ['https://github.com/o/r..name', GH, ref(GH, 'github.com', 'o', 'r..name')],
    [
      `https://github.com/${'a'.repeat(39)}/${'r'.repeat(100)}`,
      GH,
      ref(GH, 'github.com', 'a'.repeat(39), 'r'.repeat(100)),
    ],
    ['http://127.0.0.1:4010/alice/demo', SIM, ref(SIM, '127.0.0.1:4010', 'alice', 'demo')],
    ['http://127.0.0.1:4010/alice/demo.git', SIM, ref(SIM, '127.0.0.1:4010', 'alice', 'demo')],
    ['https://127.0.0.1:4010/alice/demo', SIM, ref(SIM, '127.0.0.1:4010', 'alice', 'demo')],
    ['git@127.0.0.1:alice/demo.git', SIM, ref(SIM, '127.0.0.1:4010', 'alice', 'demo')],
    [
      'https://ghe.example.com/prefix/team/app.git',
      'https://GHE.example.com/prefix/',
      ref('https://ghe.example.com/prefix', 'ghe.example.com', 'team', 'app'),
    ],
    [
      'git@ghe.example.com:team/app.git',
      'https://ghe.example.com/prefix',
      ref('https://ghe.example.com/prefix', 'ghe.example.com', 'team', 'app'),
    ],
  ]
  for (const [input, githubUrl, expected] of table) {
    t.same(parseRepoUrl(input, githubUrl), expected, `${JSON.stringify(input)} with ${githubUrl}`)
  }
})

t.test('rejected forms', async (t) => {
  const table: Array<[name: string, input: string, githubUrl?: string]> = [
    ['other host', 'https://gitlab.com/o/r'],
    ['look-alike suffix host', 'https://github.com.evil.com/o/r'],
    ['look-alike path', 'https://evil.com/github.com/o/r'],
    ['look-alike userinfo', 'https://github.com@evil.com/o/r'],
    ['userinfo before real host', 'https://evil.com@github.com/o/r'],
    ['look-alike ssh host', 'git@github.com.evil.com:o/r.git'],
    ['look-alike ssh userinfo', 'git@evil.com@github.com:o/r.git'],
    ['look-alike ssh url host', 'ssh://git@github.com.evil.com/o/r.git'],
    ['trailing-dot host', 'https://github.com./o/r'],
    ['other subdomain', 'https://api.github.com/o/r'],
    ['www on a GHES', 'https://www.ghe.example.com/o/r', 'https://ghe.example.com'],
    ['www on the simulator', 'http://www.127.0.0.1:4010/o/r', SIM],
    ['unicode look-alike host', 'https://gіthub.com/o/r'],
    ['other port', 'https://github.com:8443/o/r'],
    ['empty port', 'https://github.com:/o/r'],
    ['simulator port mismatch', 'http://127.0.0.1:4011/o/r', SIM],
    ['simulator without port', 'http://127.0.0.1/o/r', SIM],
    ['credentials', 'https://user:tok@github.com/o/r'],
    ['token as username', 'https://ghp_abcdefghijklmnopqrstuvwxyz@github.com/o/r'],
    ['empty userinfo', 'https://@github.com/o/r'],
    ['ssh url with password', 'ssh://git:pw@github.com/o/r.git'],
    ['ssh url other user', 'ssh://root@github.com/o/r.git'],
    ['scp other user', 'root@github.com:o/r.git'],
    ['scp without user', 'github.com:o/r.git'],
    ['dot-dot segment', 'https://github.com/o/../r'],
    ['dot-dot repo', 'https://github.com/o/..'],
    ['dot repo', 'https://github.com/o/.'],
    ['dot owner segment', 'https://github.com/./o/r'],
    ['dot-dot after repo', 'https://github.com/o/r/..'],
    ['dot-dot in scp', 'git@github.com:../o/r'],
    ['dot-dot repo in scp', 'git@github.com:o/..'],
    ['dot-dot repo.git', 'https://github.com/o/...git'],
    ['encoded dot-dot', 'https://github.com/o/%2e%2e'],
    ['encoded dot-dot uppercase', 'https://github.com/o/%2E%2E/r'],
    ['encoded slash', 'https://github.com/o%2Fr/x'],
    ['any percent encoding', 'https://github.com/o/r%41'],
    ['percent in owner', 'https://github.com/%6f/r'],
    ['leading dash owner', 'https://github.com/-o/r'],
    ['leading dash repo', 'https://github.com/o/-r'],
    ['leading dash option', 'https://github.com/o/--upload-pack=touch'],
    ['leading dash scp', 'git@github.com:-oProxyCommand=x/r'],
    ['remote helper ext', 'ext::sh -c touch% /tmp/pwned'],
    ['remote helper plain', 'ext::sh'],
    ['remote helper in path', 'https://github.com/o/r::x'],
    ['extra path tree', 'https://github.com/o/r/tree/main'],
    ['extra path issues', 'https://github.com/o/r/issues'],
    ['extra path blob', 'https://github.com/o/r/blob/main/README.md'],
    ['two trailing slashes', 'https://github.com/o/r//'],
    ['double slash', 'https://github.com//o/r'],
    ['owner only', 'https://github.com/o'],
    ['owner only slash', 'https://github.com/o/'],
    ['host only', 'https://github.com'],
    ['host only slash', 'https://github.com/'],
    ['scp trailing slash', 'git@github.com:o/r/'],
    ['query', 'https://github.com/o/r?tab=readme'],
    ['empty query', 'https://github.com/o/r?'],
    ['fragment', 'https://github.com/o/r#readme'],
    ['inner space', 'https://github.com/o/r r'],
    ['inner tab', 'https://github.com/o/\tr'],
    ['inner newline', 'https://github.com/o/r\nhttps://evil.com/o/r'],
    ['null byte', 'https://github.com/o/r\u0000'],
    ['DEL', 'https://github.com/o/r\u007f'],
    ['non-breaking space', 'https://github.com/o/\u00a0r'],
    ['backslash', 'https://github.com\\o\\r'],
    ['backslash host trick', 'https://evil.com\\@github.com/o/r'],
    ['empty', ''],
    ['blank', '   '],
    ['empty owner', 'https://github.com//r'],
    ['empty repo', 'https://github.com/o/'],
    ['empty repo scp', 'git@github.com:o/'],
    ['repo .git only', 'https://github.com/o/.git'],
    ['repo .git.git', 'https://github.com/o/r.git.git'],
    ['file scheme', 'file:///etc/passwd'],
    ['file scheme with host', 'file://github.com/o/r'],
    ['ftp scheme', 'ftp://github.com/o/r'],
    ['git scheme', 'git://github.com/o/r.git'],
    ['git+ssh scheme', 'git+ssh://git@github.com/o/r.git'],
    ['no scheme', 'github.com/o/r'],
    ['scheme-relative', '//github.com/o/r'],
    ['bare owner/repo', 'o/r'],
    ['http when configured https', 'http://github.com/o/r'],
    ['owner too long', `https://github.com/${'a'.repeat(40)}/r`],
    ['owner underscore', 'https://github.com/o_o/r'],
    ['owner dot', 'https://github.com/o.o/r'],
    ['repo too long', `https://github.com/o/${'r'.repeat(101)}`],
    ['repo bad char', 'https://github.com/o/r$'],
    ['repo with @', 'https://github.com/o/r@x'],
    ['repo with colon', 'https://github.com/o/r:x'],
    ['over-long input', `https://github.com/o/r${' '.repeat(2048)}`],
    ['over-long path', `https://github.com/o/${'r'.repeat(2100)}`],
    ['javascript scheme', 'javascript:alert(1)'],
    ['ipv6-ish host', 'https://[::1]/o/r'],
  ]
  for (const [name, input, githubUrl = GH] of table) {
    try {
      const result = parseRepoUrl(input, githubUrl)
      t.fail(`${name}: accepted ${JSON.stringify(input)} as ${JSON.stringify(result)}`)
    } catch (err) {
      t.ok(
        isInvalidRepoUrl(err),
        `${name}: ${JSON.stringify(input)}${isInvalidRepoUrl(err) ? '' : ` → ${err}`}`,
      )
    }
  }
})

t.test('refusals say why, without echoing the input', async (t) => {
  const table: Array<[input: string, why: RegExp]> = [
    // A new user's example: the sentence names what to use instead.
    [
      'https://gitlab.com/o/r',
      /host is not the configured GitHub \(https:\/\/github\.com\/owner\/repository\)\.$/,
    ],
    ['https://github.com.evil.com/o/r', /host is not the configured GitHub/],
    ['git@gitlab.com:o/r.git', /host is not the configured GitHub/],
    ['https://user:ghp_secret123@github.com/o/r', /contains credentials/],
    ['https://ghp_secret123@github.com/o/r', /contains credentials/],
    ['ssh://git:ghp_secret123@github.com/o/r.git', /contains credentials/],
    ['root@github.com:o/r.git', /contains credentials/],
    ['https://github.com/o/r/tree/main', /path is not owner\/repository/],
    ['https://github.com/o', /path is not owner\/repository/],
    ['https://github.com/o/../r', /path is not owner\/repository/],
    ['https://github.com/-o/r', /not a valid GitHub name/],
    ['https://github.com/o/r$', /not a valid GitHub name/],
    ['http://github.com/o/r', /uses http:\/\/ but GitHub is configured with https:\/\//],
    ['https://github.com/o/r?tab=readme', /percent-encoding/],
    ['file:///etc/passwd', /not an https:\/\/, ssh:\/\/ or git@ URL/],
    ['', /not an https:\/\/, ssh:\/\/ or git@ URL/],
    [`https://github.com/o/${'r'.repeat(2100)}`, /longer than 2048 characters/],
  ]
  for (const [input, why] of table) {
    try {
      parseRepoUrl(input, GH)
      t.fail(`accepted ${JSON.stringify(input)}`)
    } catch (err) {
      t.ok(isInvalidRepoUrl(err), input)
      t.match((err as Error).message, why, input)
      t.notMatch((err as Error).message, /ghp_secret123|user:|gitlab|evil|root/, `${input}: input not echoed`)
    }
  }
})

t.test('non-string input is rejected as invalid', async (t) => {
  for (const input of [undefined, null, 42, {}, ['https://github.com/o/r']]) {
    t.throws(() => parseRepoUrl(input as unknown as string, GH), {
      code: 'INVALID_REPO_URL',
      statusCode: 400,
    })
  }
})

t.test('a misconfigured githubUrl is a TypeError, not a user error', async (t) => {
  t.throws(() => parseRepoUrl('https://github.com/o/r', 'not a url'), TypeError)
  t.throws(() => parseRepoUrl('https://github.com/o/r', 'ftp://github.com'), TypeError)
})

const FUZZ_PIECES = [
  'https://',
  'http://',
  'ssh://',
  'git@',
  'github.com',
  '127.0.0.1:4010',
  'evil.com',
  ':',
  '/',
  '//',
  '.',
  '..',
  '.git',
  '@',
  '%2e',
  '%',
  '?',
  '#',
  '::',
  '-',
  '_',
  ' ',
  '\t',
  '\n',
  '\u0000',
  '\\',
  'o',
  'repo',
  'é',
  '😀',
  'A',
  '9',
]

function randomInput(): string {
  if (randomInt(4) === 0) {
    // Raw random code units, including lone surrogates.
    let out = ''
    for (let i = randomInt(0, 40); i > 0; i--) out += String.fromCharCode(randomInt(0, 0x10000))
    return out
  }
  let out = ''
  for (let i = randomInt(0, 14); i > 0; i--) out += FUZZ_PIECES[randomInt(FUZZ_PIECES.length)]
  return out
}

/** Mutates a valid URL by inserting, deleting or replacing one piece. */
function mutate(valid: string): string {
  const at = randomInt(valid.length + 1)
  const piece = FUZZ_PIECES[randomInt(FUZZ_PIECES.length)]!
  switch (randomInt(3)) {
    case 0:
      return valid.slice(0, at) + piece + valid.slice(at)
    case 1:
      return valid.slice(0, at) + valid.slice(at + 1)
    default:
      return valid.slice(0, at) + piece + valid.slice(at + piece.length)
  }
}

t.test('fuzz: only INVALID_REPO_URL is ever thrown, and accepted results are well-formed', async (t) => {
  const seeds = [
    'https://github.com/octo/repo.git',
    'git@github.com:octo/repo.git',
    'ssh://git@github.com/octo/repo',
  ]
  let unexpected = 0
  let accepted = 0
  for (let i = 0; i < 20_000; i++) {
    const input = i % 2 === 0 ? randomInput() : mutate(seeds[randomInt(seeds.length)]!)
    try {
      const result = parseRepoUrl(input, GH)
      accepted++
      const ok =
        /^[A-Za-z0-9][A-Za-z0-9-]{0,38}$/.test(result.owner) &&
        /^[A-Za-z0-9._][A-Za-z0-9._-]{0,99}$/.test(result.repo) &&
        result.repo !== '.' &&
        result.repo !== '..' &&
        result.host === 'github.com' &&
        result.htmlUrl === `https://github.com/${result.owner}/${result.repo}` &&
        result.cloneUrl === `${result.htmlUrl}.git`
      if (!ok) {
        unexpected++
        t.fail(`malformed result for ${JSON.stringify(input)}: ${JSON.stringify(result)}`)
      }
    } catch (err) {
      if (!isInvalidRepoUrl(err)) {
        unexpected++
        t.fail(`unexpected error for ${JSON.stringify(input)}: ${String(err)}`)
      }
    }
  }
  t.equal(unexpected, 0)
  t.ok(accepted > 0, `some mutations stay valid (${accepted})`)
})

t.test(
  'a host refusal names the configured GitHub, a GitHub Enterprise Server or the simulator',
  async (t) => {
    t.throws(() => parseRepoUrl('https://github.com/acme/app', 'http://127.0.0.1:4110/'), {
      message:
        'Repo URL must be a valid GitHub repository URL: its host is not the configured GitHub (http://127.0.0.1:4110/owner/repository).',
    })
    t.throws(() => parseRepoUrl('git@github.com:acme/app.git', 'https://ghe.example.com/prefix'), {
      message: /\(https:\/\/ghe\.example\.com\/prefix\/owner\/repository\)\.$/,
    })
  },
)
