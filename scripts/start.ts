/**
 * `npm start`: development launcher. Migrates the database (creating it if needed), then runs
 * the API and one worker together. When no GitHub OAuth client is configured it starts the
 * bundled GitHub simulator and points both processes at it, so the product runs end to end
 * offline.
 *
 * Stopping: SIGTERM or SIGINT, sent to this process alone (e.g. through npm) or to its whole
 * process group (Ctrl-C, `kill -- -pgid`), stops everything it started. The API and the worker
 * run in process groups of their own, so they hear a signal once, from here, and their own
 * children (git) go down with them. Each group gets SIGTERM, then SIGKILL after the grace period
 * (SHUTDOWN_TIMEOUT_MS plus a margin). When either process exits on its own, the other is stopped
 * too. Exit code: 128 + the signal's number after a signal (130, 143), otherwise the exit code of
 * the process that ended first.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { constants } from 'node:os'
import { ConfigError, createRedis, loadConfig, serviceAddress } from '@portico/core'
import { createDb, ensureDatabase, migrateToLatest } from '@portico/db'
import { defaultSeed, type Seed, type Simulator, startSimulator } from '@portico/github-sim'

if (existsSync('.env')) process.loadEnvFile('.env')

const say = (msg: string) => console.log(`[start] ${msg}`)
const env: Record<string, string | undefined> = { ...process.env }

/** Margin on top of the children's own SHUTDOWN_TIMEOUT_MS before their groups get SIGKILL. */
const KILL_MARGIN_MS = 5000
/** Upper bound on closing the in-process simulator. */
const SIM_CLOSE_TIMEOUT_MS = 5000

const children: ChildProcess[] = []
let sim: Simulator | undefined
let graceMs = 25_000 + KILL_MARGIN_MS
let stopping: Promise<never> | undefined

const running = (c: ChildProcess) => c.exitCode === null && c.signalCode === null

/** Signals a child's whole process group (the child and everything it spawned). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** Stops one child: SIGTERM to its group, SIGKILL to the group after the grace period. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (running(child)) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    signalGroup(child, 'SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), graceMs)
    })
    if (await Promise.race([exited.then(() => false), timedOut])) {
      say(`pid ${child.pid} still running after ${graceMs} ms: SIGKILL`)
    }
    clearTimeout(timer)
  }
  // Sweep what the child left behind in its group (git processes), even after a clean exit.
  signalGroup(child, 'SIGKILL')
}

/** Stops every child and the simulator, then exits with `code`. Later calls wait for the first. */
function stop(code: number): Promise<never> {
  stopping ??= (async () => {
    await Promise.all(children.map(stopChild))
    if (sim) {
      const closing = sim.close().catch((err) => say(`simulator did not close cleanly: ${err}`))
      await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, SIM_CLOSE_TIMEOUT_MS))])
    }
    process.exit(code)
  })()
  return stopping
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  // A group signal reaches npm and this process at once and npm forwards its copy: repeats are
  // expected, so they do not cut the grace period short (SIGKILL ends a stuck shutdown anyway).
  process.on(signal, () => {
    if (!stopping) say(`${signal}: stopping`)
    void stop(128 + constants.signals[signal])
  })
}
// npm does not pass SIGTERM on to the script it runs (npm 11 exits at once and leaves it
// running), so a signal sent to npm alone never reaches this process. The launchers above us in
// our own process group (npm, tsx) are watched instead: when one of them is gone, stop as for
// SIGTERM. Linux only (/proc); elsewhere signals to the group still work.
function procStat(pid: number): { state: string; ppid: number; pgrp: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const [state = '', ppid = '', pgrp = ''] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { state, ppid: Number(ppid), pgrp: Number(pgrp) }
  } catch {
    return undefined
  }
}
const own = procStat(process.pid)
const launchers: number[] = []
for (let pid = process.ppid; own && pid > 1; ) {
  const stat = procStat(pid)
  if (!stat || stat.pgrp !== own.pgrp) break
  launchers.push(pid)
  pid = stat.ppid
}
if (launchers.length > 0) {
  setInterval(() => {
    const gone = launchers.find((pid) => {
      const stat = procStat(pid)
      return !stat || stat.state === 'Z'
    })
    if (gone !== undefined && !stopping) {
      say(`launcher (pid ${gone}) exited: stopping`)
      void stop(128 + constants.signals.SIGTERM)
    }
  }, 500).unref()
}

process.on('uncaughtException', (err) => {
  console.error(err)
  void stop(1)
})
process.on('unhandledRejection', (err) => {
  console.error(err)
  void stop(1)
})

// `PORT=3300 npm start` is served at http://localhost:3300: the public URL (OAuth redirect, CSRF
// origin, the App's webhook and Setup URL) follows the port unless PUBLIC_URL says otherwise.
if (env.PUBLIC_URL === undefined && env.PORT !== undefined && env.PORT.trim() !== '') {
  env.PUBLIC_URL = `http://localhost:${env.PORT.trim()}`
}

let config: ReturnType<typeof loadConfig>
try {
  config = loadConfig(env)
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err)
  process.exit(1)
}

graceMs = config.SHUTDOWN_TIMEOUT_MS + KILL_MARGIN_MS

/** A port `npm start` or a process it starts listens on, with the variable that chooses it. */
interface Listener {
  variable: string
  what: string
  host: string
  port: number
}

/** The simulator's port when SIM_PORT is not set; moved elsewhere when it is taken. */
const DEFAULT_SIM_PORT = 4010
const simulated = !config.oauthConfigured
// An empty SIM_PORT counts as unset, as for the variables loadConfig reads.
const simPortText = env.SIM_PORT?.trim() || undefined
const simPort = simPortText === undefined ? DEFAULT_SIM_PORT : Number(simPortText)
if (simulated && simPortText !== undefined && !(/^\d+$/.test(simPortText) && simPort <= 65535)) {
  console.error('[start] SIM_PORT must be a port number (0-65535; 0 picks a free one)')
  process.exit(1)
}

// Every port something started here will listen on. Another server on one of them would answer
// in its place (a new user was told "API on …" before the API failed with EADDRINUSE), or the
// process would die with a bare EADDRINUSE stack (SIM_PORT, METRICS_PORT): each is checked, and
// refused by name, before anything starts.
const listeners: Listener[] = [{ variable: 'PORT', what: 'API', host: config.HOST, port: config.PORT }]
if (config.METRICS_PORT !== undefined) {
  listeners.push({
    variable: 'METRICS_PORT',
    what: "API's metrics listener",
    host: config.HOST,
    port: config.METRICS_PORT,
  })
}
if (config.WORKER_HEALTH_PORT > 0) {
  listeners.push({
    variable: 'WORKER_HEALTH_PORT',
    what: "worker's health listener",
    host: config.WORKER_HEALTH_HOST,
    port: config.WORKER_HEALTH_PORT,
  })
}
// The simulator listens on 127.0.0.1. A port the user chose is kept or refused; the default moves.
if (simulated && simPortText !== undefined && simPort !== 0) {
  listeners.push({ variable: 'SIM_PORT', what: 'GitHub simulator', host: '127.0.0.1', port: simPort })
}

for (const [i, later] of listeners.entries()) {
  const earlier = listeners.slice(0, i).find((l) => l.port === later.port)
  if (earlier) {
    console.error(
      `[start] ${later.variable} and ${earlier.variable} are both ${later.port}: the ${later.what} and the ${earlier.what} need a port each`,
    )
    process.exit(1)
  }
}

const hostPort = (host: string, port: number) => `${host.includes(':') ? `[${host}]` : host}:${port}`

/** Why `listener` cannot listen, in words: "the port is in use (PORT chooses another)". */
function cannotListen(listener: Listener, err: NodeJS.ErrnoException): string {
  const why =
    err.code === 'EADDRINUSE'
      ? `the port is in use (${listener.variable} chooses another)`
      : err.code === 'EACCES'
        ? `permission denied (ports below 1024 need privileges; ${listener.variable} chooses another)`
        : err.code === 'EADDRNOTAVAIL'
          ? "the address is not one of this machine's"
          : err.message
  return `[start] the ${listener.what} cannot listen on ${hostPort(listener.host, listener.port)}: ${why}`
}

/** Whether `host:port` can be listened on now: null, or the error a listener would meet. */
const probe = (host: string, port: number) =>
  new Promise<NodeJS.ErrnoException | null>((resolve) => {
    const server = createServer()
    server.once('error', resolve)
    server.listen(port, host, () => server.close(() => resolve(null)))
  })

for (const listener of listeners) {
  const err = await probe(listener.host, listener.port)
  if (err) {
    console.error(cannotListen(listener, err))
    process.exit(1)
  }
}
if (simulated) {
  // The default port is left to a listener above that chose it (the simulator, started first,
  // would take it, and the API or the metrics listener would then fail).
  const claimed = simPortText === undefined ? listeners.find((l) => l.port === DEFAULT_SIM_PORT) : undefined
  // The seeded App talks to this API wherever it listens: webhook, Setup URL and sign-in callback.
  const seed = structuredClone(defaultSeed) as Seed
  for (const ghApp of seed.github_apps ?? []) {
    if (ghApp.webhook) ghApp.webhook.url = `${config.PUBLIC_URL}/webhooks/github`
    ghApp.setup_url = `${config.PUBLIC_URL}/github/setup`
    ghApp.callback_url = `${config.PUBLIC_URL}/auth/callback`
  }
  try {
    sim = await startSimulator({ port: claimed ? 0 : simPort, seed, autoApprove: false })
    if (claimed) {
      say(
        `port ${DEFAULT_SIM_PORT} is ${claimed.variable}'s: the simulator listens on ${new URL(sim.url).port} (SIM_PORT chooses)`,
      )
    }
  } catch (err) {
    // A port the user chose is kept or refused (taken since it was checked); only the default moves.
    const error = err as NodeJS.ErrnoException
    if (simPortText !== undefined || error.code !== 'EADDRINUSE') {
      const listener = { variable: 'SIM_PORT', what: 'GitHub simulator', host: '127.0.0.1', port: simPort }
      console.error(
        error.syscall === 'listen'
          ? cannotListen(listener, error)
          : `[start] the GitHub simulator could not start: ${error.message}`,
      )
      process.exit(1)
    }
    sim = await startSimulator({ port: 0, seed, autoApprove: false })
    say(`port ${simPort} is in use: the simulator listens on ${new URL(sim.url).port} (SIM_PORT chooses)`)
  }
  const app = sim.seed.oauth?.apps?.[0]
  const bot = sim.seed.users.find((u) => u.login === 'portico-bot')?.tokens?.[0]?.token
  Object.assign(env, {
    GITHUB_URL: sim.url,
    GITHUB_API_URL: sim.apiUrl,
    GITHUB_OAUTH_CLIENT_ID: app?.client_id,
    GITHUB_OAUTH_CLIENT_SECRET: app?.client_secret,
    GH_TOKEN: env.GH_TOKEN ?? bot,
    GH_REPO: env.GH_REPO ?? 'acme/infra-specs',
    // Operators are named by GitHub user id (OPERATOR_LOGINS is deprecated): octocat's, in the seed.
    ...(env.OPERATOR_GITHUB_IDS === undefined && env.OPERATOR_LOGINS === undefined
      ? { OPERATOR_GITHUB_IDS: String(sim.seed.users.find((u) => u.login === 'octocat')?.id ?? '') }
      : {}),
    // The seeded App sends its webhook to PUBLIC_URL/webhooks/github with this secret:
    // deploy → merged → applied shows without any set-up (docs/webhooks.md).
    GITHUB_WEBHOOK_SECRET: env.GITHUB_WEBHOOK_SECRET ?? sim.seed.github_apps?.[0]?.webhook?.secret,
  })
  // The seed's demo GitHub App, so both connection methods (PAT and App) can be tried.
  const demoApp = sim.seed.github_apps?.[0]?.slug
  if (demoApp && env.GITHUB_APP_ID === undefined) {
    const info = sim.githubApp(demoApp)
    Object.assign(env, {
      GITHUB_APP_ID: String(info.id),
      GITHUB_APP_SLUG: info.slug,
      GITHUB_APP_PRIVATE_KEY: info.privateKey,
    })
    say(
      `GitHub App "${info.slug}" (id ${info.id}) from the simulator: repositories can be connected through it`,
    )
  }
  say(
    `no GitHub OAuth client configured: using the bundled GitHub simulator at ${sim.url} (API ${sim.apiUrl})`,
  )
  say('sign in as "octocat" (operator) or another seeded user; see packages/github-sim/README.md')
  config = loadConfig(env)
}

try {
  if (await ensureDatabase(config.DATABASE_URL)) say('created the database')
  const db = createDb(config)
  try {
    const { results } = await migrateToLatest(db)
    say(`database ready (${results?.length ?? 0} migration(s) applied)`)
  } finally {
    await db.destroy()
  }
} catch (err) {
  // Where, without the password, and what Postgres said: a stack trace named neither.
  console.error(
    `[start] the database in DATABASE_URL (${serviceAddress(config.DATABASE_URL)}) is not usable: ${(err as Error).message || err}`,
  )
  await stop(1)
}

{
  // Checked up front as the database is (a new user's trial: the worker gave up after 10 s with
  // a stack trace, after "API on …" had been announced). One attempt, bounded by connectTimeout.
  const redis = createRedis(config.REDIS_URL, 'producer', { lazyConnect: true, retryStrategy: () => null })
  let cause: Error | undefined
  redis.on('error', (err: Error) => {
    cause ??= err
  })
  try {
    await redis.connect()
    await redis.ping()
  } catch (err) {
    // ioredis rejects with "Connection is closed."; the first error says why.
    console.error(
      `[start] the Redis in REDIS_URL (${serviceAddress(config.REDIS_URL)}) is not usable: ${(cause ?? (err as Error)).message}`,
    )
    redis.disconnect()
    await stop(1)
  }
  redis.disconnect()
}

const exitWithParent = new URL('./exit-with-parent.mjs', import.meta.url).href

function run(name: string, entry: string): void {
  if (stopping) return
  const child = spawn(process.execPath, [...process.execArgv, '--import', exitWithParent, entry], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: a group signal sent to `npm start` reaches it once (from stop()),
    // and signalling the group reaches the processes it spawns.
    detached: true,
  })
  for (const stream of [child.stdout, child.stderr]) {
    let partial = ''
    stream?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) console.log(`[${name}] ${line}`)
    })
  }
  child.on('error', (err) => {
    say(`${name} could not start: ${err.message}`)
    void stop(1)
  })
  child.on('exit', (code, signal) => {
    say(`${name} exited (${signal ?? code})`)
    // One process ending on its own ends them all: a half-running product is worse than none.
    if (!stopping) void stop(code ?? 128 + (signal ? constants.signals[signal] : 0))
  })
  children.push(child)
}

/**
 * Says where the API is once it answers `/health/live`, not before: an API that then fails to
 * listen (its port taken) was announced all the same.
 */
async function announceWhenListening(): Promise<void> {
  const host = ['0.0.0.0', '::', ''].includes(config.HOST) ? '127.0.0.1' : config.HOST
  const live = `http://${host.includes(':') ? `[${host}]` : host}:${config.PORT}/health/live`
  while (!stopping) {
    const answered = await fetch(live, { signal: AbortSignal.timeout(2000) }).then(
      (res) => res.ok,
      () => false,
    )
    if (answered && !stopping) {
      say(
        `API on ${config.PUBLIC_URL} — sign in at ${config.PUBLIC_URL}/auth/login, queues at ${config.PUBLIC_URL}/admin/queues`,
      )
      return
    }
    await new Promise((resolve) => setTimeout(resolve, 250).unref())
  }
}

run('api', 'apps/api/src/server.ts')
run('worker', 'apps/worker/src/index.ts')
void announceWhenListening()
