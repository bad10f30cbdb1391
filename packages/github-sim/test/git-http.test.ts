import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import t from 'tap'
import { basicHeader, octokit, runGit, sim, TOKENS, tempDir } from './fixtures/sim.js'

t.test('git smart HTTP', async (t) => {
  const s = await sim(t)
  const dir = await tempDir(t)

  t.test('private clone with a token as Basic password', async (t) => {
    const r = await runGit([
      '-c',
      basicHeader(TOKENS.bot),
      'clone',
      `${s.url}/acme/infra-specs.git`,
      join(dir, 'specs'),
    ])
    t.equal(r.code, 0, r.stderr)
    const spec = await readFile(join(dir, 'specs/infra/alpha/dev/spec.yml'), 'utf8')
    t.match(spec, /kind: Pod/)
    const entries = s.ledger.entries({ kind: 'git' })
    t.ok(entries.length >= 2)
    t.ok(entries.every((e) => e.login === 'portico-bot' && !e.counted))
  })

  t.test('Bearer header and no .git suffix', async (t) => {
    const r = await runGit([
      '-c',
      `http.extraHeader=Authorization: Bearer ${TOKENS.octocat}`,
      'clone',
      `${s.url}/acme/sample-app`,
      join(dir, 'app'),
    ])
    t.equal(r.code, 0, r.stderr)
  })

  t.test('private clone without credentials fails with 401', async (t) => {
    const r = await runGit(['clone', `${s.url}/acme/infra-specs.git`, join(dir, 'nope')])
    t.not(r.code, 0)
    const res = await fetch(`${s.url}/acme/infra-specs.git/info/refs?service=git-upload-pack`)
    t.equal(res.status, 401)
    t.equal(res.headers.get('www-authenticate'), 'Basic realm="GitHub"')
  })

  t.test('valid token without access gets 404; bad token 401', async (t) => {
    const noAccess = await fetch(`${s.url}/acme/infra-specs.git/info/refs?service=git-upload-pack`, {
      headers: { authorization: `Bearer ${TOKENS.monalisa}` },
    })
    t.equal(noAccess.status, 404)
    const bad = await fetch(`${s.url}/acme/infra-specs.git/info/refs?service=git-upload-pack`, {
      headers: { authorization: 'Bearer ghp_unknown' },
    })
    t.equal(bad.status, 401)
  })

  t.test('anonymous clone of a public repo', async (t) => {
    const r = await runGit(['clone', `${s.url}/octocat/hello-world.git`, join(dir, 'hello')])
    t.equal(r.code, 0, r.stderr)
    t.equal(await readFile(join(dir, 'hello/README'), 'utf8'), 'Hello World!\n')
  })

  t.test('gzip-encoded upload-pack request (protocol v2 ls-refs)', async (t) => {
    const pkt = (line: string) => (line.length + 4).toString(16).padStart(4, '0') + line
    const body = `${pkt('command=ls-refs\n')}${pkt('agent=test\n')}0001${pkt('peel\n')}0000`
    const res = await fetch(`${s.url}/octocat/hello-world.git/git-upload-pack`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-git-upload-pack-request',
        'content-encoding': 'gzip',
        'git-protocol': 'version=2',
      },
      body: gzipSync(body),
    })
    t.equal(res.status, 200)
    t.equal(res.headers.get('content-type'), 'application/x-git-upload-pack-result')
    t.match(await res.text(), /refs\/heads\/main/)
  })

  t.test('push is refused', async (t) => {
    const res = await fetch(`${s.url}/octocat/hello-world.git/info/refs?service=git-receive-pack`, {
      headers: { authorization: `Bearer ${TOKENS.octocat}` },
    })
    t.equal(res.status, 403)
    const r = await runGit([
      '-C',
      join(dir, 'hello'),
      '-c',
      'user.name=x',
      '-c',
      'user.email=x@x',
      'commit',
      '--allow-empty',
      '-m',
      'x',
    ])
    t.equal(r.code, 0)
    const push = await runGit([
      '-C',
      join(dir, 'hello'),
      '-c',
      basicHeader(TOKENS.octocat),
      'push',
      'origin',
      'HEAD:main',
    ])
    t.not(push.code, 0)
  })

  t.test('a branch created through the refs API is fetchable', async (t) => {
    const gh = octokit(s, TOKENS.bot)
    const main = await gh.rest.git.getRef({ owner: 'acme', repo: 'sample-app', ref: 'heads/main' })
    await gh.rest.git.createRef({
      owner: 'acme',
      repo: 'sample-app',
      ref: 'refs/heads/from-api',
      sha: main.data.object.sha,
    })
    const r = await runGit([
      '-C',
      join(dir, 'app'),
      '-c',
      `http.extraHeader=Authorization: Bearer ${TOKENS.octocat}`,
      'fetch',
      'origin',
    ])
    t.equal(r.code, 0, r.stderr)
    const rev = await runGit(['-C', join(dir, 'app'), 'rev-parse', 'origin/from-api'])
    t.equal(rev.stdout.trim(), main.data.object.sha)
  })

  t.test('a file committed through the contents API is in a fresh clone', async (t) => {
    const gh = octokit(s, TOKENS.bot)
    await gh.rest.repos.createOrUpdateFileContents({
      owner: 'acme',
      repo: 'infra-specs',
      path: 'infra/delta/dev/spec.yml',
      message: 'Add delta dev',
      content: Buffer.from('apiVersion: v1\nkind: Pod\n').toString('base64'),
    })
    const r = await runGit([
      '-c',
      basicHeader(TOKENS.bot),
      'clone',
      `${s.url}/acme/infra-specs.git`,
      join(dir, 'specs2'),
    ])
    t.equal(r.code, 0, r.stderr)
    t.equal(
      await readFile(join(dir, 'specs2/infra/delta/dev/spec.yml'), 'utf8'),
      'apiVersion: v1\nkind: Pod\n',
    )
    const log = await runGit(['-C', join(dir, 'specs2'), 'log', '-1', '--format=%s|%an'])
    t.equal(log.stdout.trim(), 'Add delta dev|Portico Bot')
  })
})
