// `npm start` refuses a configuration it cannot run (ports taken or shared, no database) in one
// sentence, before it starts or announces anything.
import { freePort, testConfig } from '@portico/testing'
import t from 'tap'
import { exitOf, spawnStart, takenPort } from './start-helpers.js'

const config = await testConfig(t)

t.test('a SIM_PORT that is taken is refused before anything starts, not moved to another port', async (t) => {
  // A review's example: a taken SIM_PORT printed EADDRINUSE as the simulator failed, while a
  // taken PORT was refused in a sentence before anything started.
  const simPort = await takenPort(t)
  const started = await spawnStart(t, config, await freePort(), simPort)
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
    const started = await spawnStart(t, config, await freePort(), 0, { [variable]: String(port) })
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
  const started = await spawnStart(t, config, port, 0, { METRICS_PORT: String(port) })
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
  const started = await spawnStart(t, config, port, 0)
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
  const started = await spawnStart(t, config, await freePort(), 0, {
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
  const started = await spawnStart(t, config, port, port)
  const result = await exitOf(started)
  t.match(result, { code: 1 }, started.logs.text)
  t.match(started.logs.text, `SIM_PORT and PORT are both ${port}`)
  t.notMatch(started.logs.text, /API on http/, 'no API was announced')
})

t.test('a Redis that cannot be reached is named, without its password, before anything starts', async (t) => {
  // A new user's trial: the worker gave up after 10 s with a stack trace, after "API on …" had
  // been announced.
  const started = await spawnStart(t, config, await freePort(), 0, {
    REDIS_URL: 'redis://:s3cret-pw@127.0.0.1:1/2',
  })
  const result = await exitOf(started)
  t.match(result, { code: 1 }, started.logs.text)
  t.match(
    started.logs.text,
    '[start] the Redis in REDIS_URL (127.0.0.1:1/2) is not usable: connect ECONNREFUSED 127.0.0.1:1',
  )
  t.notMatch(started.logs.text, /s3cret-pw/, 'never the password')
  t.notMatch(started.logs.text, /API on http|\n\s+at /, 'nothing announced, no stack trace')
})
