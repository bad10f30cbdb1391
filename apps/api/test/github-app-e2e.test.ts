// End to end with real processes for the GitHub App method (issue 13): the API server and the
// worker, the simulator's App, git server, Postgres and Redis, and no GH_TOKEN anywhere. Also the
// secret scan: no installation token may appear anywhere it could leak.
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { createDb } from '@portico/db'
import { startTestSimulator, testConfig } from '@portico/testing'
import t from 'tap'
import { dumpRedis, httpClient, signInOverHttp, startPortico, until, watchGitCommandLines } from './e2e.js'

const { sim, env } = await startTestSimulator(t)
const config = await testConfig(t, env)
const db = createDb(config)
t.teardown(() => db.destroy())

const ghApp = sim.githubApp('portico-dev')
const INSTALLATION = 5550001
const SAMPLE_APP = 700002
const INFRA_SPECS = 700001
const HELLO_WORLD = 1296269
// The App is the only service identity: GH_TOKEN is not set for either process.
delete env.GH_TOKEN

const { base, api, worker } = await startPortico(t, {
  name: 'github-app-e2e',
  config,
  env,
  overrides: {
    WORKER_QUEUES: 'clone,maintenance',
    GITHUB_APP_ID: String(ghApp.id),
    GITHUB_APP_SLUG: ghApp.slug,
    GITHUB_APP_PRIVATE_KEY: ghApp.privateKey,
    GH_TOKEN: '',
  },
})
const client = httpClient(base)
const { call, responses } = client
await signInOverHttp(client, 'octocat')
const tenant = (await call('POST', '/api/v1/tenants', { slug: 'e2e-app-tenant', name: 'E2E' })).json()
const project = (
  await call('POST', `/api/v1/tenants/${tenant.id}/projects`, { name: 'App', slug: 'app' })
).json()
const github = `/api/v1/projects/${project.id}/github`

// Every git command line seen while clones run.
const gitCommandLines = watchGitCommandLines(t, config.cloneRoot)

/** Polls the connection until it is analysed or failed. */
const settled = () =>
  until(
    async () => {
      const body = (await call('GET', github)).json()
      return body.status === 'analyzed' || body.status === 'failed' ? body : undefined
    },
    120_000,
    'the connection to settle',
  )

const REPO = (id: number) => ({ installation_id: INSTALLATION, repository_id: id })

t.test('/health is healthy with the App and no GH_TOKEN', async (t) => {
  const res = await call('GET', '/health')
  t.equal(res.status, 200, res.text)
  t.equal(res.json().github, 'connected')
  t.equal(res.json().token_kind, 'server-to-server')
})

t.test('installations listed; forged ids refused', async (t) => {
  const res = await call('GET', `${github}/installations`)
  t.equal(res.status, 200, res.text)
  const acme = res.json().installations.find((i: { id: number }) => i.id === INSTALLATION)
  t.same(acme.repositories.map((r: { id: number }) => r.id).sort(), [INFRA_SPECS, SAMPLE_APP])
  const forgedInstallation = await call('POST', github, {
    installation_id: 424242999,
    repository_id: SAMPLE_APP,
  })
  t.equal(forgedInstallation.status, 400)
  t.equal(forgedInstallation.json().code, 'INSTALLATION_NOT_ACCESSIBLE')
  const forgedRepo = await call('POST', github, REPO(HELLO_WORLD))
  t.equal(forgedRepo.status, 400)
  t.equal(forgedRepo.json().code, 'REPOSITORY_NOT_IN_INSTALLATION')
  t.equal((await call('GET', github)).status, 404, 'nothing was connected')
})

let minted: string[] = []
t.test('connect through the App: cloned and analysed with a down-scoped token', async (t) => {
  const before = new Set(sim.installationTokens(INSTALLATION))
  // Slow enough that the /proc watcher sees git's command line even on a loaded machine.
  sim.setLatency(700)
  t.teardown(() => sim.setLatency(0))
  const created = await call('POST', github, REPO(SAMPLE_APP))
  t.equal(created.status, 201, created.text)
  t.equal(created.json().auth_method, 'app')
  const done = await settled()
  t.equal(done.status, 'analyzed', done.error_message ?? '')
  t.equal(done.routes_count, 10)
  t.equal(done.components_count, 3)
  const dest = path.join(config.cloneRoot, 'tenants', tenant.id, 'repos', done.id)
  t.ok(existsSync(path.join(dest, 'src/routes/users.js')))

  const fresh = sim.installationTokens(INSTALLATION).filter((tok) => !before.has(tok))
  t.ok(fresh.length >= 1, 'the worker minted a token for the clone')
  for (const token of fresh) {
    const headers = { authorization: `token ${token}`, accept: 'application/vnd.github+json' }
    const repos = (await (await fetch(`${sim.apiUrl}/installation/repositories`, { headers })).json()) as {
      repositories: { id: number }[]
    }
    t.same(
      repos.repositories.map((r: { id: number }) => r.id),
      [SAMPLE_APP],
      'the token reaches that one repository only',
    )
    const other = await fetch(`${sim.apiUrl}/repos/acme/infra-specs`, { headers })
    t.equal(other.status, 404, 'not the other repository of the installation')
    await other.body?.cancel()
    const write = await fetch(`${sim.apiUrl}/repos/acme/sample-app/contents/x.txt`, {
      method: 'PUT',
      headers,
      body: JSON.stringify({ message: 'x', content: Buffer.from('x').toString('base64') }),
    })
    t.not(write.status, 201, 'and cannot write (contents: read)')
    await write.body?.cancel()
  }
  minted = sim.installationTokens(INSTALLATION)

  t.test('secret scan: no installation token anywhere', async (t) => {
    const gitConfig = await readFile(path.join(dest, '.git/config'), 'utf8')
    const dumps = await dumpRedis(config.REDIS_URL, config.REDIS_PREFIX)
    t.ok(
      dumps.some((d) => d.includes(`clone-${done.id}`)),
      'the clone job was found in Redis',
    )
    const row = await db
      .selectFrom('github_connections')
      .selectAll()
      .where('id', '=', done.id)
      .executeTakeFirstOrThrow()
    t.equal(row.encrypted_token, null, 'no token stored')
    t.ok(gitCommandLines.size > 0, 'git command lines were captured')
    const places: Record<string, string> = {
      '.git/config': gitConfig,
      'API logs': api.logs.text,
      'worker logs': worker.logs.text,
      'Redis (jobs, events, sessions)': dumps.join('\n'),
      'database row': JSON.stringify(row),
      'API responses': responses.join('\n'),
      'git command lines': [...gitCommandLines].join('\n'),
    }
    t.ok(minted.length >= 2, 'tokens of the API and the worker to look for')
    for (const token of minted) {
      const basic = Buffer.from(`x-access-token:${token}`).toString('base64')
      for (const [place, text] of Object.entries(places)) {
        if (text.includes(token) || text.includes(basic)) t.fail(`an installation token is in ${place}`)
      }
    }
    t.pass('scanned')
  })
})

t.test('a token that expires mid-job is re-minted once and the clone completes', async (t) => {
  t.equal((await call('DELETE', github)).status, 204)
  const before = new Set(sim.installationTokens(INSTALLATION))
  sim.setLatency(800)
  t.teardown(() => sim.setLatency(0))
  const created = await call('POST', github, REPO(SAMPLE_APP))
  t.equal(created.status, 201, created.text)
  // The worker's token exists as soon as it is minted: expire it before git or the API use it.
  const first = await until(
    async () => sim.installationTokens(INSTALLATION).find((tok) => !before.has(tok)),
    120_000,
    'the clone token to be minted',
  )
  sim.expireToken(first)
  const done = await settled()
  t.equal(done.status, 'analyzed', done.error_message ?? '')
  const fresh = sim.installationTokens(INSTALLATION).filter((tok) => !before.has(tok))
  t.equal(fresh.length, 2, 'minted, refused, minted again once')
  t.ok(worker.logs.text.includes('minting a new one'), 'the worker says why')
})

t.test('the repository unselected before the clone: APP_ACCESS_REVOKED', async (t) => {
  t.equal((await call('DELETE', github)).status, 204)
  sim.setLatency(800)
  t.teardown(() => {
    sim.setLatency(0)
    sim.setInstallationRepositories(INSTALLATION, ['infra-specs', 'sample-app'])
  })
  const created = await call('POST', github, REPO(SAMPLE_APP))
  t.equal(created.status, 201, created.text)
  sim.setInstallationRepositories(INSTALLATION, ['infra-specs'])
  const done = await settled()
  t.equal(done.status, 'failed')
  t.equal(done.error_code, 'APP_ACCESS_REVOKED')
  t.match(done.error_message, /Add the repository to the installation/)
})

t.test('the installation removed before the clone: APP_ACCESS_REVOKED, permanently', async (t) => {
  t.equal((await call('DELETE', github)).status, 204)
  const mine = sim.installApp('portico-dev', 'octocat')
  sim.setLatency(800)
  t.teardown(() => sim.setLatency(0))
  const created = await call('POST', github, { installation_id: mine, repository_id: HELLO_WORLD })
  t.equal(created.status, 201, created.text)
  // The worker's mint waits out the latency; the App is gone by the time GitHub handles it.
  sim.uninstallApp(mine)
  const done = await settled()
  t.equal(done.status, 'failed')
  t.equal(done.error_code, 'APP_ACCESS_REVOKED')
  t.match(done.error_message, /connect again/)
  const row = await db
    .selectFrom('github_connections')
    .selectAll()
    .where('id', '=', done.id)
    .executeTakeFirstOrThrow()
  t.equal(row.encrypted_token, null)
  t.equal(Number(row.installation_id), mine)
})
