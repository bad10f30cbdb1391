import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'

const root = new URL('../../../', import.meta.url)
const read = (file: string) => readFileSync(new URL(file, root), 'utf8')

interface Service {
  image?: string
  command?: string[]
  healthcheck?: { test: string[] }
  depends_on?: Record<string, { condition: string }>
  environment?: Record<string, string>
}

t.test('docker-compose.yml runs the stack with health checks', async (t) => {
  const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> }
  const { postgres, redis, api, worker, migrate } = compose.services
  t.match(postgres?.image, /^postgres:16/)
  t.match(redis?.image, /^redis:7/)
  t.ok(redis?.command?.join(' ').includes('--maxmemory-policy noeviction'), 'BullMQ needs noeviction')
  for (const [name, service] of Object.entries({ postgres, redis, api, worker })) {
    t.ok(service?.healthcheck?.test.length, `${name} has a health check`)
  }
  t.same(migrate?.command, ['node', 'packages/db/dist/migrate.cli.js', 'latest'])
  t.equal(api?.depends_on?.migrate?.condition, 'service_completed_successfully')
  t.same(worker?.command, ['node', 'apps/worker/dist/index.js'])
  t.equal(api?.environment?.NODE_ENV, 'production')
})

t.test('the Dockerfile installs every workspace', async (t) => {
  const dockerfile = read('Dockerfile')
  const { workspaces } = JSON.parse(read('package.json')) as { workspaces: string[] }
  for (const ws of workspaces) {
    t.match(dockerfile, `COPY ${ws}/package.json ${ws}/`, `build stage copies ${ws}/package.json`)
    t.match(
      dockerfile,
      `COPY --from=build /app/${ws}/package.json ${ws}/`,
      `runtime stage copies ${ws}/package.json`,
    )
  }
})

t.test(
  "the Dockerfile's Node flags are ones this Node accepts (Node exits on an unknown flag)",
  async (t) => {
    const cmd = /^CMD (\[.*\])\s*$/m.exec(read('Dockerfile'))?.[1]
    const argv = JSON.parse(cmd ?? '[]') as string[]
    t.equal(argv[0], 'node')
    const flags = argv.slice(1, -1)
    t.ok(flags.length > 0, flags.join(' '))
    const run = spawnSync(process.execPath, [...flags, '-e', 'process.stdout.write("ok")'], {
      encoding: 'utf8',
    })
    t.equal(run.stderr, '')
    t.equal(run.stdout, 'ok')
  },
)

const JEMALLOC = 'libjemalloc.so.2'
const jemallocHere = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib'].some((dir) =>
  existsSync(`${dir}/${JEMALLOC}`),
)

t.test('the Dockerfile preloads jemalloc, and installs it', async (t) => {
  const dockerfile = read('Dockerfile')
  t.equal(/^ENV .*\bLD_PRELOAD=(\S+)/m.exec(dockerfile)?.[1], JEMALLOC)
  t.match(dockerfile, /apt-get install[^\n]*\blibjemalloc2\b/)
})

t.test(
  'Node runs with the preloaded jemalloc',
  {
    skip: jemallocHere
      ? false
      : `${JEMALLOC} is not installed here (apt-get install libjemalloc2; CI installs it)`,
  },
  async (t) => {
    const run = spawnSync(
      process.execPath,
      [
        '-e',
        "process.stdout.write(String(require('fs').readFileSync('/proc/self/maps', 'utf8').includes('libjemalloc')))",
      ],
      { env: { ...process.env, LD_PRELOAD: JEMALLOC }, encoding: 'utf8' },
    )
    t.equal(run.stderr, '', 'the loader found it')
    t.equal(run.stdout, 'true', 'jemalloc is mapped')
  },
)
