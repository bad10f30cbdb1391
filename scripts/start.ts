/**
 * `npm start`: development launcher. Migrates the database (creating it if needed), then runs
 * the API and one worker together. When no GitHub OAuth client is configured it starts the
 * bundled GitHub simulator and points both processes at it, so the product runs end to end
 * offline.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { ConfigError, loadConfig } from '@portico/core'
import { createDb, ensureDatabase, migrateToLatest } from '@portico/db'
import { type Simulator, startSimulator } from '@portico/github-sim'

if (existsSync('.env')) process.loadEnvFile('.env')

const say = (msg: string) => console.log(`[start] ${msg}`)
const env: Record<string, string | undefined> = { ...process.env }

let config: ReturnType<typeof loadConfig>
try {
  config = loadConfig(env)
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err)
  process.exit(1)
}

let sim: Simulator | undefined
if (!config.oauthConfigured) {
  const port = Number(env.SIM_PORT ?? 4010)
  sim = await startSimulator({ port, autoApprove: false }).catch(() =>
    startSimulator({ port: 0, autoApprove: false }),
  )
  const app = sim.seed.oauth?.apps?.[0]
  const bot = sim.seed.users.find((u) => u.login === 'portico-bot')?.tokens?.[0]?.token
  Object.assign(env, {
    GITHUB_URL: sim.url,
    GITHUB_API_URL: sim.apiUrl,
    GITHUB_OAUTH_CLIENT_ID: app?.client_id,
    GITHUB_OAUTH_CLIENT_SECRET: app?.client_secret,
    GH_TOKEN: env.GH_TOKEN ?? bot,
    GH_REPO: env.GH_REPO ?? 'acme/infra-specs',
    OPERATOR_LOGINS: env.OPERATOR_LOGINS ?? 'octocat',
  })
  say(
    `no GitHub OAuth client configured: using the bundled GitHub simulator at ${sim.url} (API ${sim.apiUrl})`,
  )
  say('sign in as "octocat" (operator) or another seeded user; see packages/github-sim/README.md')
  config = loadConfig(env)
}

if (await ensureDatabase(config.DATABASE_URL)) say('created the database')
const db = createDb(config)
const { results } = await migrateToLatest(db)
await db.destroy()
say(`database ready (${results?.length ?? 0} migration(s) applied)`)

const children: ChildProcess[] = []
function run(name: string, entry: string): ChildProcess {
  const child = spawn(process.execPath, [...process.execArgv, entry], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  for (const stream of [child.stdout, child.stderr]) {
    let partial = ''
    stream?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) console.log(`[${name}] ${line}`)
    })
  }
  child.on('exit', (code, signal) => {
    say(`${name} exited (${signal ?? code})`)
    if (!stopping) void stop(code ?? 1)
  })
  children.push(child)
  return child
}

let stopping = false
async function stop(code = 0): Promise<void> {
  if (stopping) return
  stopping = true
  await Promise.all(
    children
      .filter((c) => c.exitCode === null && c.signalCode === null)
      .map((c) => new Promise((resolve) => c.once('exit', resolve).kill('SIGTERM'))),
  )
  await sim?.close()
  process.exit(code)
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void stop(0))

run('api', 'apps/api/src/server.ts')
run('worker', 'apps/worker/src/index.ts')
say(
  `API on ${config.PUBLIC_URL} — sign in at ${config.PUBLIC_URL}/auth/login, queues at ${config.PUBLIC_URL}/admin/queues`,
)
