// The end-to-end harness: the real API server and worker as child processes against the test's
// database, Redis prefix and simulator, an HTTP client with a cookie jar, sign-in through the real
// OAuth flow, and what the secret scans read (git command lines, every Redis key).
import { type ChildProcess, spawn } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { type Config, createRedis, waitForRedis } from '@portico/core'
import { freePort, type Teardown } from '@portico/testing'

const entry = (app: 'api' | 'worker') =>
  fileURLToPath(new URL(`../../${app}/src/${app === 'api' ? 'server' : 'index'}.ts`, import.meta.url))

/** A started process and everything it printed (stdout and stderr). */
export interface E2eProcess {
  child: ChildProcess
  logs: { text: string }
}

/** The API and worker processes of one test file. */
export interface Portico {
  /** `http://127.0.0.1:{port}`: the API's origin (PUBLIC_URL). */
  base: string
  api: E2eProcess
  worker: E2eProcess
}

/** Options of {@link startPortico}. */
export interface StartOptions {
  /** Names the file in the leak guard's message. */
  name: string
  /** The file's configuration (database, Redis prefix, keyring, clone root). */
  config: Config
  /** The simulator's environment (`startTestSimulator`'s `env`). */
  env: Record<string, string | undefined>
  /** The API's port when it must be known before (e.g. a webhook URL in the seed); default a free one. */
  port?: number
  /** Variables for both processes, over the defaults (WORKER_QUEUES, secrets, App credentials…). */
  overrides?: Record<string, string>
}

/**
 * The variables that give a child process a test's own database, Redis prefix, clone root and
 * secrets (from `testConfig`).
 */
export function isolationEnv(config: Config): Record<string, string> {
  return {
    DATABASE_URL: config.DATABASE_URL,
    REDIS_URL: config.REDIS_URL,
    REDIS_PREFIX: config.REDIS_PREFIX,
    CLONE_ROOT: config.cloneRoot,
    TOKEN_ENCRYPTION_KEYS: config.TOKEN_ENCRYPTION_KEYS,
    SESSION_SECRET: config.SESSION_SECRET,
  }
}

/** Polls `check` every 50 ms until it returns a value (errors count as "not yet"), at most `timeoutMs`. */
export async function until<T>(
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/**
 * SIGTERM, then SIGKILL if the process has not exited after a generous grace period, so a slow
 * shutdown on a loaded machine cannot hang the file (clean shutdown has tests of its own).
 */
export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  await done
  clearTimeout(killer)
}

/**
 * Starts the API server and the worker (`tsx` sources, like `npm start`) and waits until the API
 * answers and the worker has started; both are stopped at teardown. A file still alive 90 s after
 * its teardown (longer than the SIGKILL grace) names its open handles and exits, so a leak reports
 * itself instead of hanging the run.
 */
export async function startPortico(t: Teardown, opts: StartOptions): Promise<Portico> {
  t.teardown(() => {
    setTimeout(() => {
      console.error(`${opts.name}: still open 90 s after its tests:`, process.getActiveResourcesInfo())
      process.exit()
    }, 90_000).unref()
  })
  const { config } = opts
  const port = opts.port ?? (await freePort())
  const base = `http://127.0.0.1:${port}`
  const processEnv = {
    ...process.env,
    ...opts.env,
    NODE_ENV: 'test',
    LOG_LEVEL: 'debug',
    ...isolationEnv(config),
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: base,
    ...opts.overrides,
  }
  const start = (app: 'api' | 'worker'): E2eProcess => {
    const child = spawn(process.execPath, [...process.execArgv, entry(app)], {
      env: processEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const logs = { text: '' }
    child.stdout?.on('data', (d: Buffer) => {
      logs.text += d.toString()
    })
    child.stderr?.on('data', (d: Buffer) => {
      logs.text += d.toString()
    })
    t.teardown(() => stop(child))
    return { child, logs }
  }
  const api = start('api')
  const worker = start('worker')
  await until(async () => ((await fetch(`${base}/health`)).status > 0 ? true : undefined), 120_000, 'the API')
  await until(
    async () => (worker.logs.text.includes('worker started') ? true : undefined),
    120_000,
    'the worker',
  )
  return { base, api, worker }
}

/** One answer of {@link HttpClient.call}. */
export interface CallResult {
  status: number
  text: string
  // biome-ignore lint/suspicious/noExplicitAny: tests read response fields directly
  json: () => any
  location: string | null
}

/** A browser-like client of the API: a cookie jar, the API's own Origin, every body kept. */
export interface HttpClient {
  call(method: string, url: string, body?: unknown): Promise<CallResult>
  /** Every response body so far, for the secret scans. */
  responses: string[]
  /** The Cookie header the next call sends. */
  cookies(): string
}

export function httpClient(base: string): HttpClient {
  const responses: string[] = []
  let jar = ''
  const remember = (res: Response) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair = ''] = c.split(';')
      const name = pair.split('=')[0]
      jar = [...jar.split('; ').filter((p) => p && !p.startsWith(`${name}=`)), pair].join('; ')
    }
  }
  return {
    responses,
    cookies: () => jar,
    async call(method, url, body) {
      const res = await fetch(`${base}${url}`, {
        method,
        redirect: 'manual',
        headers: {
          cookie: jar,
          origin: base,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      remember(res)
      const text = await res.text()
      responses.push(text)
      return { status: res.status, text, json: () => JSON.parse(text), location: res.headers.get('location') }
    },
  }
}

/** Signs `login` in through the real OAuth flow over HTTP (the simulator approves at once). */
export async function signInOverHttp(client: HttpClient, login: string): Promise<void> {
  const start = await client.call('GET', '/auth/login')
  const authorize = new URL(String(start.location))
  authorize.searchParams.set('login', login)
  const approved = await fetch(authorize, { redirect: 'manual' })
  const callback = new URL(String(approved.headers.get('location')))
  const signedIn = await client.call('GET', `${callback.pathname}${callback.search}`)
  if (signedIn.status !== 302) throw new Error(`sign-in failed: ${signedIn.status} ${signedIn.text}`)
}

/**
 * Every command line of a process whose arguments mention one of `needles` (the clone root, the
 * simulator's URL: git clones and fetches), read from /proc every 10 ms until teardown: what the
 * secret scans check for tokens in argv.
 */
export function watchGitCommandLines(t: Teardown, ...needles: string[]): Set<string> {
  const lines = new Set<string>()
  let watching = true
  const watcher = (async () => {
    while (watching) {
      // All at once: a sweep must stay shorter than a clone, even on a loaded machine.
      const pids = (await readdir('/proc').catch(() => [] as string[])).filter((n) => /^\d+$/.test(n))
      const cmdlines = await Promise.all(
        pids.map((pid) => readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')),
      )
      for (const cmdline of cmdlines) {
        if (needles.some((n) => cmdline.includes(n))) lines.add(cmdline.replaceAll('\0', ' '))
      }
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  })()
  t.teardown(async () => {
    watching = false
    await watcher
  })
  return lines
}

/** Every key under `prefix` with its value (`key JSON`), whatever its type: jobs, events, sessions. */
export async function dumpRedis(url: string, prefix: string): Promise<string[]> {
  const redis = createRedis(url, 'producer')
  try {
    await waitForRedis(redis)
    const dumps: string[] = []
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = next
      for (const key of keys) {
        const type = await redis.type(key)
        const value =
          type === 'hash'
            ? await redis.hgetall(key)
            : type === 'string'
              ? await redis.get(key)
              : type === 'list'
                ? await redis.lrange(key, 0, -1)
                : type === 'zset'
                  ? await redis.zrange(key, 0, -1)
                  : type === 'set'
                    ? await redis.smembers(key)
                    : type === 'stream'
                      ? await redis.xrange(key, '-', '+')
                      : null
        dumps.push(`${key} ${JSON.stringify(value)}`)
      }
    } while (cursor !== '0')
    return dumps
  } finally {
    redis.disconnect()
  }
}

/** `GET /api/deployments/{id}` as the deployment-stage tests read it. */
export interface DeploymentView {
  id: string
  status: string
  stage: string | null
  pr_number: number | null
  merged_at: string | null
  merge_commit_sha: string | null
  applied_at: string | null
  checks: { name: string; conclusion: string | null; url: string | null }[]
  superseded_by: string | null
  updated_at: string
}

/** Deploys through the API and follows their stages (webhooks or the reconciler move them). */
export function deployments(client: HttpClient) {
  const view = async (id: string) =>
    (await client.call('GET', `/api/deployments/${id}`)).json() as DeploymentView
  const waitStage = (id: string, stages: string[], what: string) =>
    until(
      async () => {
        const d = await view(id)
        return d.stage !== null && stages.includes(d.stage) ? d : undefined
      },
      120_000,
      what,
    )
  /** POST /api/pod, then the deployment with its pull request open. */
  const deployPod = async (customer: string): Promise<DeploymentView> => {
    const res = await client.call('POST', '/api/pod', {
      customer,
      env: 'dev',
      spec: { instance_name: `${customer}-dev-01`, waf_enabled: true },
    })
    if (res.status !== 201 && res.status !== 202) throw new Error(`deploy: ${res.status} ${res.text}`)
    return waitStage(res.json().deployment_id, ['pr_open'], `${customer}'s pull request`)
  }
  return { view, waitStage, deployPod }
}
