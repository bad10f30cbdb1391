/**
 * HTTP read path vs a bare Fastify hello-world, measured in the same run with autocannon.
 *
 * Two child processes under plain Node: the bare baseline (servers/bare.server.mjs) and the API
 * as it ships (`npm run build`, then `node apps/api/dist/server.js` with the Dockerfile's Node
 * flags and preloaded allocator, NODE_ENV=production, request logs at info to a discarded stdout, the default pool size
 * and pods revalidation window) on its own database and Redis prefix, against the GitHub
 * simulator started here. A user signs in through the real OAuth flow, creates a tenant, a
 * project and a PAT connection over HTTP; then, for each round, each target alternates with the
 * baseline in slices (ABBA order, see `pair`), so that the machine's changes of speed fall on both:
 *   - `GET /api/v1/projects/{id}/github` (session-authenticated connection status):
 *     ≥ 0.15× baseline req/s (stretch 0.30×), p99 ≤ 50 ms at 50 connections, zero non-2xx;
 *   - warm `GET /api/pods` as the signed-in user: ≥ 0.15× baseline, zero counted GitHub calls;
 * and finally the API's RSS after 100 connections for 30 s (≤ 200 MB), with its split (heap,
 * rest, code) from /proc and /metrics. Each measurement also prints the server's CPU time per
 * request, steadier than req/s on a machine whose speed varies between runs.
 * Env: BENCH_ROUNDS (default 2), BENCH_SECONDS per measurement (default 8), BENCH_SLICES (slices
 * per measurement, default 4), BENCH_LOG_LEVEL,
 * BENCH_LD_PRELOAD (the API's LD_PRELOAD instead of the Dockerfile's jemalloc; empty for
 * glibc's malloc), BENCH_CPU_PROF (a directory for a `--cpu-prof` profile of the API process), BENCH_NODE (the
 * Node binary both servers run on; default the one running the bench), BENCH_NODE_ARGS (more Node
 * options for both servers, space-separated, e.g. `--trace-gc`), BENCH_API_STDOUT=1 (show the
 * servers' stdout, where request logs and `--trace-gc` go; pair it with BENCH_LOG_LEVEL=warn),
 * MALLOC_ARENA_MAX (passed on when set).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import path from 'node:path'
import { startSimulator } from '@portico/github-sim'
import { freePort, testConfig } from '@portico/testing'
import autocannon from 'autocannon'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2)
/** The Node both servers run on: BENCH_NODE (e.g. the Node 24 CI installs in .cache/node24), else this one. */
const NODE = process.env.BENCH_NODE ?? process.execPath
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8)
/** Slices each side of a measurement is cut into (see {@link pair}); each at least a second long. */
const SLICES = Number(process.env.BENCH_SLICES ?? 4)
if (!(Number.isInteger(SLICES) && SLICES >= 1 && SECONDS / SLICES >= 1))
  throw new Error(`BENCH_SLICES must be a whole number from 1 to BENCH_SECONDS (${SECONDS})`)
const CONNECTIONS = 50
const WARMUP_SECONDS = 5
const PUBLIC_URL = 'http://localhost:3000'
const teardowns: (() => unknown)[] = []

const root = path.join(import.meta.dirname, '..', '..')

/**
 * The Node flags the image runs the API with: those of the Dockerfile's `CMD ["node", …flags,
 * "apps/api/dist/server.js"]`, so the bench measures what ships. Throws when that line is missing.
 */
function shippedApiFlags(): string[] {
  const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8')
  const cmd = /^CMD (\[.*\])\s*$/m.exec(dockerfile)?.[1]
  const argv = cmd ? (JSON.parse(cmd) as string[]) : []
  const script = argv.indexOf('apps/api/dist/server.js')
  if (argv[0] !== 'node' || script < 1)
    throw new Error(`Dockerfile: no CMD ["node", …, "apps/api/dist/server.js"]`)
  return argv.slice(1, script)
}

/**
 * The allocator the image preloads into the API: the Dockerfile's `ENV … LD_PRELOAD=…` (jemalloc),
 * unless BENCH_LD_PRELOAD says otherwise (empty: glibc's malloc, for a comparison).
 */
function shippedPreload(): string {
  if (process.env.BENCH_LD_PRELOAD !== undefined) return process.env.BENCH_LD_PRELOAD
  const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8')
  return /^ENV .*\bLD_PRELOAD=(\S+)/m.exec(dockerfile)?.[1] ?? ''
}

/** Whether process `pid` has a library whose file name contains `name` mapped. */
const maps = (pid: number, name: string) => readFileSync(`/proc/${pid}/maps`, 'utf8').includes(name)

/**
 * Starts `file` with plain Node (no TypeScript loader: what ships); resolves with its base URL and
 * pid once it listens: on `env.PORT` when set (polled at /health/live), else on the port it prints
 * as `port=<n>` on stderr.
 */
async function startServer(file: string, env: Record<string, string>, nodeFlags: string[] = []) {
  const port = Number(env.PORT ?? 0)
  const child: ChildProcess = spawn(
    NODE,
    [
      // BENCH_CPU_PROF=<dir>: write a V8 CPU profile of the API process there (open it in DevTools).
      ...(process.env.BENCH_CPU_PROF && port !== 0
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`]
        : []),
      ...nodeFlags,
      ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      file,
    ],
    {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '',
        ...(process.env.MALLOC_ARENA_MAX ? { MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX } : {}),
        ...env,
      },
      stdio: ['ignore', process.env.BENCH_API_STDOUT ? 'inherit' : 'ignore', 'pipe'],
    },
  )
  teardowns.push(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      }),
  )
  let err = ''
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`${file} exited ${code}: ${err}`))),
  )
  const listening = new Promise<number>((resolve) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      err += chunk.toString()
      const m = /port=(\d+)/.exec(err)
      if (port === 0 && m) resolve(Number(m[1]))
    })
    if (port !== 0) {
      const poll = () =>
        fetch(`http://127.0.0.1:${port}/health/live`).then(
          (res) => (res.ok ? resolve(port) : setTimeout(poll, 100)),
          () => setTimeout(poll, 100),
        )
      poll()
    }
  })
  const ready = await Promise.race([listening, exited])
  return { port: ready, pid: child.pid ?? 0, url: `http://127.0.0.1:${ready}` }
}

/** Cookie pairs from Set-Cookie headers merged into a jar. */
function merge(jar: Map<string, string>, res: Response): void {
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';')
    const eq = pair?.indexOf('=') ?? -1
    if (pair && eq > 0) jar.set(pair.slice(0, eq), pair.slice(eq + 1))
  }
}
const cookieHeader = (jar: Map<string, string>) => [...jar].map(([k, v]) => `${k}=${v}`).join('; ')

async function signIn(api: string, login: string): Promise<string> {
  const jar = new Map<string, string>()
  const start = await fetch(`${api}/auth/login`, { redirect: 'manual' })
  merge(jar, start)
  const authorize = new URL(String(start.headers.get('location')))
  authorize.searchParams.set('login', login)
  const approved = await fetch(authorize, { redirect: 'manual' })
  const back = new URL(String(approved.headers.get('location')))
  const done = await fetch(`${api}${back.pathname}${back.search}`, {
    redirect: 'manual',
    headers: { cookie: cookieHeader(jar) },
  })
  if (done.status !== 302) throw new Error(`/auth/callback answered ${done.status}`)
  merge(jar, done)
  return cookieHeader(jar)
}

async function json<T>(res: Response, status: number, what: string): Promise<T> {
  if (res.status !== status) throw new Error(`${what} answered ${res.status}: ${await res.text()}`)
  return (await res.json()) as T
}

interface Measure {
  rps: number
  p99: number
  non2xx: number
  errors: number
}

async function load(url: string, cookie?: string, connections = CONNECTIONS, duration = SECONDS) {
  const result = await autocannon({
    url,
    connections,
    duration,
    headers: cookie ? { cookie } : {},
  })
  return {
    rps: result.requests.average,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  } satisfies Measure
}

const rssMb = (pid: number) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : Number.NaN
}
/** CPU time (user + system) a process has used, in ms: /proc/<pid>/stat fields 14 and 15, in clock ticks of 10 ms. */
const cpuMs = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11]) + Number(fields[12])) * 10
}
/** Host CPU time stolen from this virtual machine so far, in ms (/proc/stat's `steal` column, clock ticks of 10 ms). */
const stealMs = () => Number(readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]?.split(/\s+/)[8] ?? 0) * 10

interface Side extends Measure {
  /** The server's CPU time per request (µs): steadier than req/s when the load generator shares the cores. */
  cpuPerRequest: number
}

/**
 * The baseline and a target measured in {@link SLICES} slices each of SECONDS / SLICES, in ABBA
 * order (bare, target, target, bare, …): a change in the machine's speed during the pair (this
 * VM's host takes CPU time away for seconds at a time) falls on both sides alike instead of on
 * whichever ran during it. req/s is the mean over the slices, p99 the worst slice's, CPU time per
 * request the total over the total; `steal` is the share of all cores the host took meanwhile.
 */
async function pair(basePid: number, baseUrl: string, pid: number, url: string, cookie: string) {
  const sliceSeconds = SECONDS / SLICES
  const sides = [
    { pid: basePid, url: baseUrl, cookie: undefined, requests: 0, cpu: 0, p99: 0, non2xx: 0, errors: 0 },
    { pid, url, cookie, requests: 0, cpu: 0, p99: 0, non2xx: 0, errors: 0 },
  ]
  const stealBefore = stealMs()
  const started = Date.now()
  for (let slice = 0; slice < 2 * SLICES; slice++) {
    // 0 1 1 0 0 1 1 0 …
    const side = sides[((slice + 1) >> 1) & 1] as (typeof sides)[number]
    const before = cpuMs(side.pid)
    const result = await load(side.url, side.cookie, CONNECTIONS, sliceSeconds)
    side.cpu += cpuMs(side.pid) - before
    side.requests += result.rps * sliceSeconds
    side.p99 = Math.max(side.p99, result.p99)
    side.non2xx += result.non2xx
    side.errors += result.errors
  }
  const steal = (stealMs() - stealBefore) / (availableParallelism() * (Date.now() - started))
  const summary = (s: (typeof sides)[number]): Side => ({
    rps: s.requests / SECONDS,
    p99: s.p99,
    non2xx: s.non2xx,
    errors: s.errors,
    cpuPerRequest: (s.cpu * 1000) / s.requests,
  })
  return {
    base: summary(sides[0] as (typeof sides)[number]),
    target: summary(sides[1] as (typeof sides)[number]),
    steal,
  }
}
/** Resident memory split by kind (MB), from /proc/<pid>/smaps_rollup: anonymous (heaps, malloc) and file-backed (code). */
const residentKinds = (pid: number) => {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN)
  return { anonymous: kb('Anonymous') / 1024, file: (kb('Rss') - kb('Anonymous')) / 1024 }
}
/** The V8 heap as prom-client reports it on /metrics (MB): committed, used, external, and per space. */
async function heapOf(api: string, token: string) {
  const text = await (await fetch(`${api}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text()
  const mb = (re: RegExp) => Number(re.exec(text)?.[1] ?? Number.NaN) / 2 ** 20
  const space = (name: string) =>
    mb(new RegExp(`nodejs_heap_space_size_total_bytes\\{space="${name}"\\} (\\d+)`))
  return {
    total: mb(/^nodejs_heap_size_total_bytes (\d+)/m),
    used: mb(/^nodejs_heap_size_used_bytes (\d+)/m),
    external: mb(/^nodejs_external_memory_bytes (\d+)/m),
    young: space('new'),
    old: space('old'),
    code: space('code'),
  }
}
/** Sums of the API's /metrics series named in `series` (label sets added up). */
async function scrape(api: string, token: string, series: readonly string[]) {
  const text = await (await fetch(`${api}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text()
  const sums = new Map<string, number>()
  for (const line of text.split('\n')) {
    const name = series.find((s) => line.startsWith(s) && /[ {]/.test(line[s.length] ?? ''))
    if (name) sums.set(name, (sums.get(name) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)))
  }
  return sums
}
/** What the API did besides answering, per measurement: cache misses and garbage collection. */
const EXTRA = [
  'portico_cache_lookups_total{cache="session",result="miss"}',
  'portico_cache_lookups_total{cache="read",result="miss"}',
  'nodejs_gc_duration_seconds_sum',
  'nodejs_gc_duration_seconds_sum{kind="major"}',
  'nodejs_gc_duration_seconds_count{kind="major"}',
] as const
const verdict = (ok: boolean) => (ok ? 'ok' : 'MISSED')

try {
  const sim = await startSimulator()
  teardowns.push(() => sim.close())
  // What ships: the compiled build under plain Node.
  const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' })
  if (build.status !== 0) throw new Error(`npm run build exited ${build.status}`)
  // Its own database (migrated) and Redis prefix, dropped at the end.
  const config = await testConfig({ teardown: (fn) => void teardowns.push(fn) })
  const metricsToken = randomBytes(16).toString('hex')
  const bare = await startServer(path.join(import.meta.dirname, 'servers', 'bare.server.mjs'), {})
  const apiFlags = shippedApiFlags()
  const preload = shippedPreload()
  const api = await startServer(
    path.join(root, 'apps', 'api', 'dist', 'server.js'),
    {
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(await freePort()),
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
      DATABASE_URL: config.DATABASE_URL,
      REDIS_URL: config.REDIS_URL,
      REDIS_PREFIX: config.REDIS_PREFIX,
      CLONE_ROOT: config.CLONE_ROOT,
      SESSION_SECRET: randomBytes(32).toString('base64url'),
      TOKEN_ENCRYPTION_KEYS: `bench:${randomBytes(32).toString('base64')}`,
      GITHUB_URL: sim.url,
      GITHUB_API_URL: sim.apiUrl,
      GH_TOKEN: 'ghp_porticobot00000000000000000000000001',
      GH_REPO: 'acme/infra-specs',
      PUBLIC_URL,
      GITHUB_OAUTH_CLIENT_ID: 'Iv1.portico-dev',
      GITHUB_OAUTH_CLIENT_SECRET: 'portico-dev-secret',
      METRICS_TOKEN: metricsToken,
      ...(preload ? { LD_PRELOAD: preload } : {}),
    },
    apiFlags,
  )

  const nodeVersion = spawnSync(NODE, ['--version'], { encoding: 'utf8' }).stdout.trim()
  // A preload the machine lacks is ignored by the loader (with a line on stderr): say which ran.
  const allocator = !preload
    ? "glibc's malloc (BENCH_LD_PRELOAD empty)"
    : maps(api.pid, preload.replace(/\.so.*$/, ''))
      ? `${preload} (the Dockerfile's LD_PRELOAD)`
      : `glibc's malloc: ${preload} is not installed here (apt-get install libjemalloc2), so this is not what ships`
  console.log(
    `servers: plain Node ${nodeVersion} (API flags from the Dockerfile: ${apiFlags.join(' ') || 'none'}; allocator: ${allocator}), ${CONNECTIONS} connections, ${SECONDS} s per measurement`,
  )
  const cookie = await signIn(api.url, 'octocat')
  const write = { cookie, origin: PUBLIC_URL, 'content-type': 'application/json' }
  const tenant = await json<{ id: string }>(
    await fetch(`${api.url}/api/v1/tenants`, {
      method: 'POST',
      headers: write,
      body: JSON.stringify({ slug: 'bench', name: 'Bench' }),
    }),
    201,
    'POST /api/v1/tenants',
  )
  const project = await json<{ id: string }>(
    await fetch(`${api.url}/api/v1/tenants/${tenant.id}/projects`, {
      method: 'POST',
      headers: write,
      body: JSON.stringify({ slug: 'bench', name: 'Bench' }),
    }),
    201,
    'POST projects',
  )
  await json(
    await fetch(`${api.url}/api/v1/projects/${project.id}/github`, {
      method: 'POST',
      headers: write,
      body: JSON.stringify({
        repo_url: `${sim.url}/acme/infra-specs`,
        pat: 'ghp_octocat00000000000000000000000000001',
      }),
    }),
    201,
    'POST connection',
  )
  const statusUrl = `${api.url}/api/v1/projects/${project.id}/github`
  const podsUrl = `${api.url}/api/pods`
  await json(await fetch(podsUrl, { headers: { cookie } }), 200, 'GET /api/pods (cold)')

  // Warm-up: JIT and connection pools, then measure. Node 24's optimising tiers take a few
  // seconds under load; with 2 s the first round still ran partly unoptimised code.
  await load(`${bare.url}/`, undefined, CONNECTIONS, WARMUP_SECONDS)
  await load(statusUrl, cookie, CONNECTIONS, WARMUP_SECONDS)
  await load(podsUrl, cookie, CONNECTIONS, WARMUP_SECONDS)

  const statusRatios: number[] = []
  const podsRatios: number[] = []
  const pct = (share: number) => `${(share * 100).toFixed(0)}%`
  // The API's cache misses and GC time during a pair, per 1,000 of its requests.
  const besides = async (url: string) => {
    const before = await scrape(api.url, metricsToken, EXTRA)
    const result = await pair(bare.pid, `${bare.url}/`, api.pid, url, cookie)
    const after = await scrape(api.url, metricsToken, EXTRA)
    const per1k = (name: (typeof EXTRA)[number]) =>
      (((after.get(name) ?? 0) - (before.get(name) ?? 0)) * 1000) / (result.target.rps * SECONDS)
    const note = `per 1,000 requests: ${per1k(EXTRA[0]).toFixed(2)} session and ${per1k(EXTRA[1]).toFixed(2)} read cache misses, ${(per1k(EXTRA[2]) * 1000).toFixed(1)} ms of GC (${(per1k(EXTRA[3]) * 1000).toFixed(1)} ms in ${per1k(EXTRA[4]).toFixed(2)} major GCs)`
    return { ...result, note }
  }
  for (let round = 1; round <= ROUNDS; round++) {
    const { base: base1, target: status, steal: steal1, note: note1 } = await besides(statusUrl)
    sim.ledger.clear()
    const { base: base2, target: pods, steal: steal2, note: note2 } = await besides(podsUrl)
    const podsCalls = sim.ledger.count({ counted: true, kind: 'api' })
    const statusRatio = status.rps / base1.rps
    const podsRatio = pods.rps / base2.rps
    statusRatios.push(statusRatio)
    podsRatios.push(podsRatio)
    console.log(`round ${round}:`)
    console.log(
      `  bare fastify (sliced with the status read, then with pods; each ratio uses its own): ${base1.rps.toFixed(0)} req/s, p99 ${base1.p99} ms, ${base1.cpuPerRequest.toFixed(0)} µs CPU/request; ${base2.rps.toFixed(0)} req/s, p99 ${base2.p99} ms, ${base2.cpuPerRequest.toFixed(0)} µs CPU/request; host steal ${pct(steal1)}, ${pct(steal2)}`,
    )
    console.log(
      `  GET /api/v1/projects/{id}/github: ${status.rps.toFixed(0)} req/s, ratio ${statusRatio.toFixed(3)} (target >= 0.15, stretch 0.30) ${verdict(statusRatio >= 0.15)}; ${status.cpuPerRequest.toFixed(0)} µs CPU/request; p99 ${status.p99} ms (target <= 50) ${verdict(status.p99 <= 50)}; non-2xx ${status.non2xx + status.errors} (target 0) ${verdict(status.non2xx + status.errors === 0)}; ${note1}`,
    )
    console.log(
      `  warm GET /api/pods: ${pods.rps.toFixed(0)} req/s, ratio ${podsRatio.toFixed(3)} (target >= 0.15) ${verdict(podsRatio >= 0.15)}; ${pods.cpuPerRequest.toFixed(0)} µs CPU/request; p99 ${pods.p99} ms; non-2xx ${pods.non2xx + pods.errors} (target 0) ${verdict(pods.non2xx + pods.errors === 0)}; counted GitHub calls ${podsCalls} (target 0) ${verdict(podsCalls === 0)}; ${note2}`,
    )
  }

  const soak = await load(statusUrl, cookie, 100, 30)
  const rss = rssMb(api.pid)
  const kinds = residentKinds(api.pid)
  const heap = await heapOf(api.url, metricsToken)
  console.log(
    `API RSS after 100 connections for 30 s: ${rss.toFixed(0)} MB (target <= 200) ${verdict(rss <= 200)} (${soak.rps.toFixed(0)} req/s, p99 ${soak.p99} ms, non-2xx ${soak.non2xx + soak.errors})`,
  )
  const f = (mb: number) => mb.toFixed(0)
  console.log(
    `  resident: ${f(kinds.anonymous)} MB anonymous, ${f(kinds.file)} MB file-backed; V8 heap ${f(heap.total)} MB committed (young ${f(heap.young)}, old ${f(heap.old)}, code ${f(heap.code)}), ${f(heap.used)} MB used, external ${f(heap.external)} MB`,
  )
  const min = (xs: number[]) => Math.min(...xs)
  console.log(
    `worst round: status ratio ${min(statusRatios).toFixed(3)}, warm pods ratio ${min(podsRatios).toFixed(3)}`,
  )
} finally {
  for (const fn of teardowns.reverse()) await fn()
}
