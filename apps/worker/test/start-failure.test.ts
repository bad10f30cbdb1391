// The worker process started on its own (`npm run worker`) when Redis does not answer.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { testConfig } from '@portico/testing'
import t from 'tap'

const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url))

t.test(
  'a Redis that does not answer at start-up is one log line naming REDIS_URL, then exit 1',
  async (t) => {
    // An adversarial trial: it died of an uncaught "Redis not ready after 10000 ms" with a bare
    // Node stack trace that named no setting.
    const config = await testConfig(t)
    const child = spawn(process.execPath, [...process.execArgv, entry], {
      env: {
        ...process.env,
        NODE_ENV: 'test',
        LOG_LEVEL: 'info',
        DATABASE_URL: config.DATABASE_URL,
        REDIS_URL: 'redis://:s3cret-pw@127.0.0.1:1',
        REDIS_PREFIX: config.REDIS_PREFIX,
        CLONE_ROOT: config.cloneRoot,
        TOKEN_ENCRYPTION_KEYS: config.TOKEN_ENCRYPTION_KEYS,
        WORKER_HEALTH_PORT: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    t.teardown(() => child.kill('SIGKILL'))
    let out = ''
    for (const stream of [child.stdout, child.stderr]) stream?.on('data', (d: Buffer) => (out += d))
    const [code] = await once(child, 'exit')
    t.equal(code, 1, out)
    const fatal = out
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { level: number; msg: string })
      .filter((line) => line.level === 60)
    t.same(
      fatal.map((line) => line.msg),
      ['worker could not start: the Redis in REDIS_URL (127.0.0.1:1) did not answer within 10 s'],
    )
    t.notMatch(out, /s3cret-pw/, 'never the password')
    t.notMatch(out, /^(Error|Node\.js v)/m, 'no uncaught stack trace')
  },
)
