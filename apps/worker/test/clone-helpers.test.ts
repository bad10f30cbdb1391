import { assertInside, clonePath } from '@portico/core'
import t from 'tap'
import { classifyGitFailure, gitEnv } from '../src/clone/git-clone.js'

const TENANT = '8f14e45f-ceea-4e7a-9f3b-2a1c0e6f1a01'
const CONN = 'c9f0f895-fb98-4b91-8d4c-7f2e5c1d2b02'

t.test(
  'gitEnv: no inherited git or askpass variables, no prompts, no LFS, token only in the extra header',
  async (t) => {
    const saved = { ...process.env }
    t.teardown(() => {
      process.env = saved
    })
    Object.assign(process.env, {
      GIT_ASKPASS: '/usr/bin/evil-askpass',
      SSH_ASKPASS: '/usr/bin/evil-askpass',
      GIT_DIR: '/somewhere/else',
      GIT_CONFIG_PARAMETERS: "'core.sshCommand'='evil'",
      GIT_TRACE: '1',
      GIT_CURL_VERBOSE: '1',
      GH_TOKEN: 'ghp_servicetoken00000000000000000000000001',
      TOKEN_ENCRYPTION_KEYS: 'k1:c2VjcmV0',
      DATABASE_URL: 'postgres://app:secret@db/portico',
    })
    const token = 'ghp_unittoken0000000000000000000000000001'
    const env = gitEnv(token)
    for (const key of [
      'GIT_ASKPASS',
      'SSH_ASKPASS',
      'GIT_DIR',
      'GIT_CONFIG_PARAMETERS',
      'GIT_TRACE',
      'GIT_CURL_VERBOSE',
      'GH_TOKEN',
      'TOKEN_ENCRYPTION_KEYS',
      'DATABASE_URL',
    ]) {
      t.equal(env[key], undefined, `${key} removed`)
    }
    t.equal(env.PATH, process.env.PATH, 'PATH is kept so git can run')
    t.equal(env.GIT_TERMINAL_PROMPT, '0')
    t.equal(env.GIT_LFS_SKIP_SMUDGE, '1')
    t.equal(env.GIT_CONFIG_NOSYSTEM, '1')
    t.equal(env.GIT_CONFIG_GLOBAL, '/dev/null')
    t.equal(env.PATH, process.env.PATH, 'the rest is inherited')
    const count = Number(env.GIT_CONFIG_COUNT)
    const config = Object.fromEntries(
      Array.from({ length: count }, (_, i) => [env[`GIT_CONFIG_KEY_${i}`], env[`GIT_CONFIG_VALUE_${i}`]]),
    )
    t.equal(
      config['http.extraHeader'],
      `Authorization: Basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`,
    )
    t.equal(config['credential.helper'], '', 'no credential helper')
    t.equal(config['http.followRedirects'], 'false')
    t.equal(config['checkout.workers'], '0', 'files are written by one worker per core')
    const carrying = Object.entries(env).filter(([, v]) => v?.includes(token) || v?.includes('Basic '))
    t.same(
      carrying.map(([k]) => k),
      [`GIT_CONFIG_VALUE_${count - 1}`],
      'the credential is in exactly one variable, as a header',
    )
    t.notOk(
      Object.values(env).some((v) => v?.includes(token)),
      'never in clear',
    )
    t.equal(gitEnv().GIT_CONFIG_COUNT, String(count - 1), 'follow-up commands get no credential')
  },
)

t.test('classifyGitFailure', async (t) => {
  t.equal(
    classifyGitFailure("fatal: could not read Username for 'http://h': terminal prompts disabled"),
    'unauthorized',
    "GitHub's 401 is the token expired or revoked",
  )
  t.equal(classifyGitFailure('fatal: Authentication failed for …'), 'unauthorized')
  t.equal(
    classifyGitFailure("fatal: unable to access '…': The requested URL returned error: 401"),
    'unauthorized',
  )
  t.equal(classifyGitFailure("fatal: unable to access '…': The requested URL returned error: 403"), 'auth')
  t.equal(classifyGitFailure('remote: Repository not found.\nfatal: repository … not found'), 'not-found')
  t.equal(
    classifyGitFailure("fatal: unable to access '…': The requested URL returned error: 404"),
    'not-found',
  )
  t.equal(classifyGitFailure("fatal: unable to access '…': Failed to connect to 127.0.0.1 port 1"), 'network')
  t.equal(classifyGitFailure("fatal: unable to access '…': Could not resolve host: github.com"), 'network')
  t.equal(classifyGitFailure('error: RPC failed; HTTP 502 curl 22'), 'network')
  t.equal(classifyGitFailure('fatal: early EOF'), 'network')
  t.equal(classifyGitFailure('fatal: something else'), 'git')
})

t.test('clone paths are built from UUIDs only and stay under the root', async (t) => {
  t.equal(clonePath('/srv/clones', TENANT, CONN), `/srv/clones/tenants/${TENANT}/repos/${CONN}`)
  t.equal(
    clonePath('/srv/clones/', TENANT.toUpperCase(), CONN),
    `/srv/clones/tenants/${TENANT}/repos/${CONN}`,
  )
  for (const [tenant, conn] of [
    ['..', CONN],
    [TENANT, '../../etc'],
    [TENANT, `${CONN}/..`],
    ['', CONN],
    [TENANT, `${CONN}\0`],
  ] as const) {
    t.throws(() => clonePath('/srv/clones', tenant, conn), /UUID/)
  }
  t.throws(() => assertInside('/srv/clones', '/srv/clones'), /escapes/)
  t.throws(() => assertInside('/srv/clones', '/srv/clones-other/x'), /escapes/)
  t.throws(() => assertInside('/srv/clones', '/srv/clones/../x'), /escapes/)
  t.doesNotThrow(() => assertInside('/srv/clones', '/srv/clones/tenants/x'))
})
