// `npm start` stopped as a person stops it: SIGTERM or SIGINT sent to npm alone or to the whole
// process group, or one child crashing, must leave no process of the tree running.
import { testConfig } from '@portico/testing'
import t from 'tap'
import { assertAllGone, cmdline, start } from './start-helpers.js'

const config = await testConfig(t)

t.test('SIGTERM to npm’s process alone stops everything it started', async (t) => {
  const started = await start(t, config)
  process.kill(started.pid, 'SIGTERM')
  const result = await assertAllGone(t, started)
  t.not(result?.code, 0, 'npm start reports that it was stopped by a signal')
  t.match(started.logs.text, /\[start\] (SIGTERM|launcher \(pid \d+\) exited): stopping/)
})

t.test('SIGINT to npm’s process alone stops everything it started', async (t) => {
  // A new user's trial: npm passed the SIGINT to the shell running the script, which held it
  // while its child ran, so nothing stopped (the script now execs tsx in the shell's place).
  const started = await start(t, config)
  process.kill(started.pid, 'SIGINT')
  await assertAllGone(t, started)
  t.match(started.logs.text, /\[start\] SIGINT: stopping/)
})

t.test('SIGTERM to the process group stops everything, once', async (t) => {
  const started = await start(t, config)
  process.kill(-started.pid, 'SIGTERM')
  const result = await assertAllGone(t, started)
  t.not(result?.code, 0, 'npm start reports that it was stopped by a signal')
  // Each child heard the signal once (from start.ts), so the worker shut down gracefully rather
  // than taking a second signal as "exit now".
  t.notMatch(started.logs.text, /second signal/)
})

t.test('SIGINT to the process group (Ctrl-C) stops everything', async (t) => {
  const started = await start(t, config)
  process.kill(-started.pid, 'SIGINT')
  await assertAllGone(t, started)
})

t.test('a crashed child stops the others', async (t) => {
  const started = await start(t, config)
  const api = started.tree.find((p) => cmdline(p).includes('apps/api/src/server.ts'))
  if (api === undefined) throw new Error('no API process in the tree')
  process.kill(api, 'SIGKILL')
  const result = await assertAllGone(t, started)
  t.not(result?.code, 0, 'npm start fails when a child crashed')
  t.match(started.logs.text, /api exited \(SIGKILL\)/)
})
