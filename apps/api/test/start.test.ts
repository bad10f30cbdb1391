// `npm start` as a person runs it: npm → sh → node scripts/start.ts → the API and the worker as
// child processes (and the simulator in-process). SIGTERM sent to npm alone or to the whole
// process group, or one child crashing, must leave no process of the tree running.
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { testConfig } from '@portico/testing'
import t, { type Test } from 'tap'
import { until } from './e2e.js'

// Three full stacks on a loaded machine: more than the default per-file budget.
t.setTimeout(300_000)

const root = fileURLToPath(new URL('../../../', import.meta.url))
const config = await testConfig(t)
const run = promisify(execFile)

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })

/** Every descendant of `pid` (children, grandchildren, …), from `ps`. */
async function descendants(pid: number): Promise<number[]> {
  const { stdout } = await run('ps', ['-o', 'pid=', '--ppid', String(pid)]).catch(() => ({ stdout: '' }))
  const children = stdout.split('\n').map(Number).filter(Boolean)
  const nested = await Promise.all(children.map(descendants))
  return [...children, ...nested.flat()]
}

/** True while `pid` exists and is not a zombie (a zombie has stopped; only its entry remains). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')
  } catch {
    return ''
  }
}

interface Started {
  npm: ChildProcess
  pid: number
  logs: { text: string }
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  tree: number[]
}

/** `npm start` in a process group of its own (killed when the test ends), with its output. */
function spawnStart(t: Test, port: number, simPort: number, extraEnv: Record<string, string> = {}) {
  // Nothing GitHub-related from the outside: start.ts then runs the bundled simulator.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^(GITHUB_|GH_|OPERATOR_)/.test(key)),
  )
  const npm = spawn('npm', ['start'], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...inherited,
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      DATABASE_URL: config.DATABASE_URL,
      REDIS_URL: config.REDIS_URL,
      REDIS_PREFIX: config.REDIS_PREFIX,
      CLONE_ROOT: config.cloneRoot,
      TOKEN_ENCRYPTION_KEYS: config.TOKEN_ENCRYPTION_KEYS,
      SESSION_SECRET: config.SESSION_SECRET,
      SHUTDOWN_TIMEOUT_MS: '5000',
      HOST: '127.0.0.1',
      PORT: String(port),
      // No PUBLIC_URL: `npm start` derives it from PORT.
      SIM_PORT: String(simPort),
      WORKER_HEALTH_PORT: '0',
      ...extraEnv,
    },
  })
  const pid = npm.pid
  if (pid === undefined) throw new Error('npm did not start')
  const logs = { text: '' }
  for (const stream of [npm.stdout, npm.stderr]) stream?.on('data', (d: Buffer) => (logs.text += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    npm.once('exit', (code, signal) => resolve({ code, signal })),
  )
  const started: Started = { npm, pid, logs, exited, tree: [] }
  t.teardown(async () => {
    // Whatever the outcome, leave nothing behind for the next test.
    for (const p of [-pid, pid, ...started.tree]) {
      try {
        process.kill(p, 'SIGKILL')
      } catch {}
    }
  })
  return started
}

/** How `npm start` exited, or 'still running' after two minutes (a refusal must come well before). */
const exitOf = (started: Started) =>
  Promise.race([
    started.exited,
    new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 120_000).unref()),
  ])

/** Runs `npm start` in a process group of its own and waits until the API and the worker are up. */
async function start(t: Test): Promise<Started> {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const started = spawnStart(t, port, 0)
  const { pid, logs } = started
  await until(
    async () => ((await fetch(`${base}/health/live`)).status === 200 ? true : undefined),
    120_000,
    'the API to answer /health/live',
  ).catch((err) => {
    t.comment(logs.text)
    throw err
  })
  await until(async () => (logs.text.includes('worker started') ? true : undefined), 120_000, 'the worker')
  // Announced once the API answers, with the public URL following PORT.
  await until(
    async () => (logs.text.includes(`API on http://localhost:${port} `) ? true : undefined),
    30_000,
    'the API to be announced',
  )
  started.tree = await descendants(pid)
  const lines = started.tree.map(cmdline)
  t.ok(
    lines.some((l) => l.includes('scripts/start.ts')),
    'the tree holds the launcher',
  )
  t.ok(
    lines.some((l) => l.includes('apps/api/src/server.ts')),
    'the tree holds the API',
  )
  t.ok(
    lines.some((l) => l.includes('apps/worker/src/index.ts')),
    'the tree holds the worker',
  )
  return started
}

async function assertAllGone(t: Test, started: Started) {
  const result = await Promise.race([
    started.exited,
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 120_000)),
  ])
  t.ok(result, `npm start exited: ${JSON.stringify(result)}`)
  const left = await until(
    async () => {
      const running = [started.pid, ...started.tree].filter(alive)
      return running.length === 0 ? running : undefined
    },
    30_000,
    'every process to be gone',
  ).catch(() => [started.pid, ...started.tree].filter(alive))
  t.same(
    left.map((p) => `${p} ${cmdline(p)}`),
    [],
    'no process of the tree is left running',
  )
  return result
}

t.test('SIGTERM to npm’s process alone stops everything it started', async (t) => {
  const started = await start(t)
  process.kill(started.pid, 'SIGTERM')
  const result = await assertAllGone(t, started)
  t.not(result?.code, 0, 'npm start reports that it was stopped by a signal')
  t.match(started.logs.text, /\[start\] (SIGTERM|launcher \(pid \d+\) exited): stopping/)
})

t.test('SIGINT to npm’s process alone stops everything it started', async (t) => {
  // A new user's trial: npm passed the SIGINT to the shell running the script, which held it
  // while its child ran, so nothing stopped (the script now execs tsx in the shell's place).
  const started = await start(t)
  process.kill(started.pid, 'SIGINT')
  await assertAllGone(t, started)
  t.match(started.logs.text, /\[start\] SIGINT: stopping/)
})

t.test('SIGTERM to the process group stops everything, once', async (t) => {
  const started = await start(t)
  process.kill(-started.pid, 'SIGTERM')
  const result = await assertAllGone(t, started)
  t.not(result?.code, 0, 'npm start reports that it was stopped by a signal')
  // Each child heard the signal once (from start.ts), so the worker shut down gracefully rather
  // than taking a second signal as "exit now".
  t.notMatch(started.logs.text, /second signal/)
})

t.test('SIGINT to the process group (Ctrl-C) stops everything', async (t) => {
  const started = await start(t)
  process.kill(-started.pid, 'SIGINT')
  await assertAllGone(t, started)
})

t.test('a crashed child stops the others', async (t) => {
  const started = await start(t)
  const api = started.tree.find((p) => cmdline(p).includes('apps/api/src/server.ts'))
  if (api === undefined) throw new Error('no API process in the tree')
  process.kill(api, 'SIGKILL')
  const result = await assertAllGone(t, started)
  t.not(result?.code, 0, 'npm start fails when a child crashed')
  t.match(started.logs.text, /api exited \(SIGKILL\)/)
})

/** A port held by another server for the rest of the test. */
async function takenPort(t: Test): Promise<number> {
  const taken = createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => taken.once('listening', resolve))
  t.teardown(() => void taken.close())
  return (taken.address() as { port: number }).port
}

t.test('a SIM_PORT that is taken is refused before anything starts, not moved to another port', async (t) => {
  // A review's example: a taken SIM_PORT printed EADDRINUSE as the simulator failed, while a
  // taken PORT was refused in a sentence before anything started.
  const simPort = await takenPort(t)
  const started = spawnStart(t, await freePort(), simPort)
  const result = await exitOf(started)
  t.match(result, { code: 1 }, started.logs.text)
  t.match(
    started.logs.text,
    `[start] the GitHub simulator cannot listen on 127.0.0.1:${simPort}: the port is in use (SIM_PORT chooses another)`,
  )
  t.notMatch(started.logs.text, /EADDRINUSE|\n\s+at /, 'no error code or stack, a sentence')
  t.notMatch(started.logs.text, /API on http|bundled GitHub simulator|database ready/, 'nothing was started')
})

t.test('a METRICS_PORT or WORKER_HEALTH_PORT that is taken is refused before anything starts', async (t) => {
  // The API or the worker died with a bare EADDRINUSE stack once the database was migrated.
  for (const [variable, what] of [
    ['METRICS_PORT', "API's metrics listener"],
    ['WORKER_HEALTH_PORT', "worker's health listener"],
  ] as const) {
    const port = await takenPort(t)
    const started = spawnStart(t, await freePort(), 0, { [variable]: String(port) })
    const result = await exitOf(started)
    t.match(result, { code: 1 }, started.logs.text)
    t.match(
      started.logs.text,
      `[start] the ${what} cannot listen on 127.0.0.1:${port}: the port is in use (${variable} chooses another)`,
      variable,
    )
    t.notMatch(started.logs.text, /EADDRINUSE|\n\s+at /, `${variable}: no error code or stack`)
    t.notMatch(started.logs.text, /API on http|simulator|database ready/, `${variable}: nothing was started`)
  }
})

t.test('two listeners given one port are refused before anything starts', async (t) => {
  const port = await freePort()
  const started = spawnStart(t, port, 0, { METRICS_PORT: String(port) })
  const result = await exitOf(started)
  t.match(result, { code: 1 }, started.logs.text)
  t.match(
    started.logs.text,
    `[start] METRICS_PORT and PORT are both ${port}: the API's metrics listener and the API need a port each`,
  )
  t.notMatch(started.logs.text, /API on http|simulator|database ready/, 'nothing was started')
})

t.test('a PORT that is taken is refused before anything starts', async (t) => {
  // A new user's example: another server on PORT answered the readiness check, so "API on …"
  // was printed before the API failed with EADDRINUSE.
  const port = await takenPort(t)
  const started = spawnStart(t, port, 0)
  const result = await exitOf(started)
  t.match(result, { code: 1 }, started.logs.text)
  t.match(
    started.logs.text,
    `the API cannot listen on 127.0.0.1:${port}: the port is in use (PORT chooses another)`,
  )
  t.notMatch(started.logs.text, /API on http|simulator/, 'nothing was started or announced')
})

t.test('a database that cannot be reached is named, without its password', async (t) => {
  // A new user's example: a wrong port printed a bare pg stack trace that never named DATABASE_URL.
  const started = spawnStart(t, await freePort(), 0, {
    DATABASE_URL: 'postgres://portico:s3cret-pw@127.0.0.1:1/portico_nowhere',
  })
  const result = await exitOf(started)
  t.match(result, { code: 1 }, started.logs.text)
  t.match(
    started.logs.text,
    '[start] the database in DATABASE_URL (portico@127.0.0.1:1/portico_nowhere) is not usable: ',
  )
  t.notMatch(started.logs.text, /s3cret-pw/, 'never the password')
})

t.test('SIM_PORT equal to PORT is refused before anything starts', async (t) => {
  const port = await freePort()
  const started = spawnStart(t, port, port)
  const result = await exitOf(started)
  t.match(result, { code: 1 }, started.logs.text)
  t.match(started.logs.text, `SIM_PORT and PORT are both ${port}`)
  t.notMatch(started.logs.text, /API on http/, 'no API was announced')
})
