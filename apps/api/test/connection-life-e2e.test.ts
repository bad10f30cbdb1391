// Connections over their life, end to end with real processes (API server, worker), the
// simulator's git server, Postgres and Redis: push → refresh → new commit_sha and analysis with the
// old one visible until then; one refresh in flight; PAT replacement; token_status; an expired
// connection brought back to life.
import { existsSync } from 'node:fs'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createDb } from '@portico/db'
import { startTestSimulator, testConfig } from '@portico/testing'
import t from 'tap'
import { httpClient, signInOverHttp, startPortico, until, watchGitCommandLines } from './e2e.js'

const { sim, env, tokenOf } = await startTestSimulator(t)
const config = await testConfig(t, env)
const db = createDb(config)
t.teardown(() => db.destroy())

const stamp = Date.now().toString(36)
const pat = (name: string) => `ghp_${name}${stamp}`.padEnd(40, '0').slice(0, 40)
const PAT = pat('life')
sim.addToken('octocat', PAT, { scopes: ['repo'] })
const allPats = [PAT]

const { base, api, worker } = await startPortico(t, {
  name: 'connection-life-e2e',
  config,
  env,
  overrides: { WORKER_QUEUES: 'clone,maintenance' },
})
// The processes' logs, kept for a failure's post-mortem (only then: each run left a file).
t.teardown(() =>
  t.passing()
    ? undefined
    : writeFile(
        path.join(tmpdir(), `connection-life-e2e-${process.pid}.log`),
        `${api.logs.text}\n${worker.logs.text}`,
      ),
)
const client = httpClient(base)
const { call, responses } = client
await signInOverHttp(client, 'octocat')
const tenant = (await call('POST', '/api/v1/tenants', { slug: 'life-tenant', name: 'Life' })).json()
const project = (
  await call('POST', `/api/v1/tenants/${tenant.id}/projects`, { name: 'App', slug: 'app' })
).json()
const github = `/api/v1/projects/${project.id}/github`

// Every git command line seen during the run (the token must never be in one).
const gitCommandLines = watchGitCommandLines(t, config.cloneRoot, sim.url)

/** Pushes one file to acme/sample-app's default branch through the contents API (a new commit). */
async function push(file: string, content: string): Promise<string> {
  const res = await fetch(`${sim.apiUrl}/repos/acme/sample-app/contents/${file}`, {
    method: 'PUT',
    headers: { authorization: `token ${tokenOf('octocat')}`, 'content-type': 'application/json' },
    body: JSON.stringify({ message: `add ${file}`, content: Buffer.from(content).toString('base64') }),
  })
  if (res.status !== 201) throw new Error(`push failed: ${res.status} ${await res.text()}`)
  return ((await res.json()) as { commit: { sha: string } }).commit.sha
}

const ORDERS = `import { Router } from 'express'

const router = Router()

router.get('/orders', async (req, res) => {
  res.json([])
})

router.post('/orders', async (req, res) => {
  res.status(201).end()
})

export { router as ordersRouter }
`

async function settled(what: string) {
  return until(
    async () => {
      const body = (await call('GET', github)).json()
      return body.refresh_status === 'queued' || body.refresh_status === 'running' ? undefined : body
    },
    180_000,
    what,
  )
}

let connectionId = ''
let firstSha = ''
const dest = () => path.join(config.cloneRoot, 'tenants', tenant.id, 'repos', connectionId)

t.test('connect → analyzed', async (t) => {
  const created = await call('POST', github, { repo_url: `${sim.url}/acme/sample-app`, pat: PAT })
  t.equal(created.status, 201, created.text)
  connectionId = created.json().id
  const done = await until(
    async () => {
      const body = (await call('GET', github)).json()
      return body.status === 'analyzed' || body.status === 'failed' ? body : undefined
    },
    180_000,
    'the connection to be analysed',
  )
  t.equal(done.status, 'analyzed', done.error_message ?? '')
  t.equal(done.routes_count, 10)
  t.equal(done.token_status, 'valid')
  t.equal(done.refresh_status, null)
  firstSha = done.commit_sha
})

t.test('push → refresh: the old analysis stays visible until the new one lands', async (t) => {
  const newSha = await push('src/routes/orders.js', ORDERS)
  t.not(newSha, firstSha)
  // Slow GitHub down so the refresh is seen in flight.
  sim.setLatency(700)
  t.teardown(() => sim.setLatency(0))

  const requested = await call('POST', `${github}/refresh`)
  t.equal(requested.status, 202, requested.text)
  const first = requested.json()
  t.equal(first.refresh_status, 'queued')
  t.equal(first.commit_sha, firstSha)

  const running = await until(
    async () => {
      const body = (await call('GET', github)).json()
      return body.refresh_status === 'running' ? body : undefined
    },
    120_000,
    'the refresh to run',
  )
  t.equal(running.status, 'analyzed', 'status unchanged while the refresh runs')
  t.equal(running.commit_sha, firstSha, 'commit_sha unchanged while the refresh runs')
  t.equal(running.routes_count, 10)

  const second = await call('POST', `${github}/refresh`)
  t.equal(second.status, 202, 'a second refresh while one runs')
  t.equal(second.json().refresh_status, 'running', 'returns the running one')
  t.equal(second.json().refresh_requested_at, first.refresh_requested_at, 'the same refresh')

  const seen: { commit: string; routes: number; status: string }[] = []
  const done = await until(
    async () => {
      const body = (await call('GET', github)).json()
      seen.push({ commit: body.commit_sha, routes: body.routes_count, status: body.status })
      return body.refresh_status === null || body.refresh_status === 'failed' ? body : undefined
    },
    180_000,
    'the refresh to land',
  )
  t.equal(done.refresh_status, null, done.refresh_error_message ?? '')
  t.equal(done.status, 'analyzed')
  t.equal(done.commit_sha, newSha, 'the new commit')
  t.equal(done.routes_count, 12, 'two more routes')
  t.ok(
    done.analysis_summary.routes.some((r: { path: string }) => r.path === '/orders'),
    'the new analysis',
  )
  t.ok(done.refreshed_at)
  t.ok(
    seen.every((s) => (s.commit === firstSha && s.routes === 10) || (s.commit === newSha && s.routes === 12)),
    'never a mix of old and new',
  )
  t.ok(existsSync(path.join(dest(), 'src/routes/orders.js')), 'the clone has the new file')
  // The worker logs the refresh after it lands (and after a Redis round trip): the row can be
  // read before the line arrives through the pipe.
  await until(
    async () => (worker.logs.text.includes('connection refreshed') ? true : undefined),
    30_000,
    'the worker to log the landed refresh',
  )
  t.equal(
    worker.logs.text.split('\n').filter((l) => l.includes('connection refreshed')).length,
    1,
    'one refresh ran for both requests',
  )
  t.ok(
    worker.logs.text.split('\n').some((l) => l.includes('refresh fetched') && l.includes('"reused":true')),
    'the existing clone was reused',
  )
  t.ok(
    [...gitCommandLines].some((c) => c.startsWith('git fetch --depth 1')),
    'with a shallow fetch',
  )
  const gitConfig = await readFile(path.join(dest(), '.git/config'), 'utf8')
  t.notOk(gitConfig.includes(PAT), '.git/config holds no token')
})

t.test('PAT replacement: the same repository only; analysis kept', async (t) => {
  const before = (await call('GET', github)).json()
  const other = await call('PATCH', github, { pat: tokenOf('hubot') })
  t.equal(other.status, 400, 'a PAT for another repository')
  t.equal(other.json().code, 'INVALID_TOKEN')

  const expiring = pat('expiring')
  allPats.push(expiring)
  sim.addToken('octocat', expiring, {
    scopes: ['repo'],
    expiresAt: new Date(Date.now() + 3 * 24 * 3600_000).toISOString(),
  })
  const replaced = await call('PATCH', github, { pat: expiring })
  t.equal(replaced.status, 200, replaced.text)
  t.equal(replaced.json().token_status, 'expiring')
  t.equal(replaced.json().commit_sha, before.commit_sha)
  t.same(replaced.json().analysis_summary, before.analysis_summary)
})

t.test(
  'a token that expires: "expired", then a refresh meets the 401: "invalid", TOKEN_EXPIRED',
  async (t) => {
    const before = (await call('GET', github)).json()
    const shortLived = pat('short')
    allPats.push(shortLived)
    // Whole seconds: GitHub's header has no milliseconds, so Portico and the simulator agree.
    const expiresAt = new Date(Date.now() + 4000)
    expiresAt.setMilliseconds(0)
    sim.addToken('octocat', shortLived, { scopes: ['repo'], expiresAt: expiresAt.toISOString() })
    const replaced = await call('PATCH', github, { pat: shortLived })
    t.equal(replaced.status, 200, replaced.text)
    t.equal(replaced.json().token_status, 'expiring')
    const expired = await until(
      async () => {
        const body = (await call('GET', github)).json()
        return body.token_status === 'expired' ? body : undefined
      },
      30_000,
      'the token to expire',
    )
    t.equal(expired.status, 'analyzed')
    t.equal(new Date(expired.token_expires_at).getTime(), expiresAt.getTime())
    while (Date.now() <= expiresAt.getTime() + 200) await new Promise((resolve) => setTimeout(resolve, 100))

    t.equal((await call('POST', `${github}/refresh`)).status, 202)
    const failed = await settled('the refresh to fail')
    t.equal(failed.refresh_status, 'failed')
    t.equal(failed.refresh_error_code, 'TOKEN_EXPIRED')
    t.equal(failed.token_status, 'invalid')
    t.equal(failed.status, 'analyzed', 'the connection keeps its analysis')
    t.equal(failed.commit_sha, before.commit_sha)

    const again = await call('POST', `${github}/refresh`)
    t.equal(again.status, 409)
    t.equal(again.json().code, 'TOKEN_INVALID')

    const fixed = await call('PATCH', github, { pat: PAT })
    t.equal(fixed.status, 200)
    t.equal(fixed.json().token_status, 'valid')
  },
)

t.test('an expired connection (clone removed, token wiped) comes back to life with a PAT', async (t) => {
  await rm(dest(), { recursive: true, force: true })
  await db
    .updateTable('github_connections')
    .set({ status: 'expired', clone_path: null, encrypted_token: null })
    .where('id', '=', connectionId)
    .execute()
  const bare = await call('POST', `${github}/refresh`)
  t.equal(bare.status, 409)
  t.equal(bare.json().code, 'TOKEN_REQUIRED')

  const requested = await call('POST', `${github}/refresh`, { pat: PAT })
  t.equal(requested.status, 202, requested.text)
  t.equal(requested.json().status, 'expired', 'still expired until the refresh lands')
  const done = await settled('the refresh to land')
  t.equal(done.refresh_status, null, done.refresh_error_message ?? '')
  t.equal(done.status, 'analyzed')
  t.equal(done.routes_count, 12)
  t.ok(existsSync(path.join(dest(), 'src/routes/orders.js')), 'cloned afresh')
})

t.test('secret scan: no PAT in git command lines, logs, responses or .git/config', async (t) => {
  t.ok(gitCommandLines.size > 0)
  const places: Record<string, string> = {
    '.git/config': await readFile(path.join(dest(), '.git/config'), 'utf8'),
    'API logs': api.logs.text,
    'worker logs': worker.logs.text,
    'API responses': responses.join('\n'),
    'git command lines': [...gitCommandLines].join('\n'),
  }
  for (const [place, text] of Object.entries(places)) {
    for (const token of allPats) t.notOk(text.includes(token), `no PAT in ${place}`)
  }
})
