import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const entry = (app: string) =>
  fileURLToPath(new URL(`../../${app}/src/${app === 'api' ? 'server' : 'index'}.ts`, import.meta.url))

for (const app of ['api', 'worker']) {
  t.test(`the ${app} refuses to start on invalid configuration, naming every bad variable`, async (t) => {
    const result = spawnSync(process.execPath, [...process.execArgv, entry(app)], {
      env: {
        ...process.env,
        PORT: 'x',
        REDIS_PREFIX: 'nobraces',
        NODE_ENV: 'production',
        SESSION_SECRET: '',
      },
      encoding: 'utf8',
      timeout: 60_000,
    })
    t.equal(result.status, 1)
    t.match(result.stderr, 'Invalid configuration')
    for (const name of ['PORT', 'REDIS_PREFIX', 'SESSION_SECRET', 'TOKEN_ENCRYPTION_KEYS'])
      t.match(result.stderr, name)
  })
}
