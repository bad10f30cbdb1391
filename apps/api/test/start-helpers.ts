// `npm start` as a person runs it, for start.test.ts and start-refusals.test.ts: npm → sh → node
// scripts/start.ts → the API and the worker as child processes (and the simulator in-process).
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { Config } from '@portico/core'
import { freePort } from '@portico/testing'
import type { Test } from 'tap'
import { isolationEnv, until } from './e2e.js'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const run = promisify(execFile)

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

export const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')
  } catch {
    return ''
  }
}

/**
 * `promise`'s value, or `fallback` after `ms` milliseconds. The timer is cleared either way: a
 * pending one held the test process open for up to two minutes after its last test (CI then
 * counted that against the file's time budget).
 */
async function within<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms)
  })
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}

export interface Started {
  npm: ChildProcess
  pid: number
  logs: { text: string }
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  tree: number[]
}

/**
 * `npm start` in a process group of its own (killed when the test ends), with its output. Its
 * temporary files (the simulator's repositories) go to a directory removed at teardown, since a
 * killed launcher cannot remove them itself.
 */
export async function spawnStart(
  t: Test,
  config: Config,
  port: number,
  simPort: number,
  extraEnv: Record<string, string> = {},
): Promise<Started> {
  const tmp = await mkdtemp(join(tmpdir(), 'portico-start-'))
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
      TMPDIR: tmp,
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      ...isolationEnv(config),
      SHUTDOWN_TIMEOUT_MS: '5000',
      HOST: '127.0.0.1',
      PORT: String(port),
      // No PUBLIC_URL: `npm start` derives it from PORT.
      SIM_PORT: String(simPort),
      WORKER_HEALTH_PORT: '0',
      ...extraEnv,
    },
  })
  npm.on('error', (err) => t.fail(`npm start: ${err.message}`))
  const pid = npm.pid
  if (pid === undefined) {
    await rm(tmp, { recursive: true, force: true })
    throw new Error('npm did not start')
  }
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
    await within(exited, 10_000, undefined)
    // Killed children may still be going away.
    await rm(tmp, { recursive: true, force: true, maxRetries: 3 })
  })
  return started
}

/** How `npm start` exited, or 'still running' after two minutes (a refusal must come well before). */
export const exitOf = (started: Started) => within(started.exited, 120_000, 'still running' as const)

/** Runs `npm start` in a process group of its own and waits until the API and the worker are up. */
export async function start(t: Test, config: Config): Promise<Started> {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const started = await spawnStart(t, config, port, 0)
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
  for (const [script, what] of [
    ['scripts/start.ts', 'launcher'],
    ['apps/api/src/server.ts', 'API'],
    ['apps/worker/src/index.ts', 'worker'],
  ] as const) {
    t.ok(
      lines.some((l) => l.includes(script)),
      `the tree holds the ${what}`,
    )
  }
  return started
}

/** Asserts that `npm start` exited within two minutes and left no process of its tree running. */
export async function assertAllGone(t: Test, started: Started) {
  const result = await within(started.exited, 120_000, undefined)
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

/** A port held by another server for the rest of the test. */
export async function takenPort(t: Test): Promise<number> {
  const taken = createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => taken.once('listening', resolve))
  t.teardown(() => void taken.close())
  return (taken.address() as { port: number }).port
}
