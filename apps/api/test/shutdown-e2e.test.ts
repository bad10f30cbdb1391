// Stopping the API process while clients hold connections it cannot finish: the graceful close
// must still run its onClose hooks before SHUTDOWN_TIMEOUT_MS, not die at the deadline.
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { freePort, startTestSimulator, testConfig } from '@portico/testing'
import t from 'tap'
import { startPortico } from './e2e.js'

const { sim, env } = await startTestSimulator(t)
const config = await testConfig(t, env)
const metricsPort = await freePort()
const { base, api } = await startPortico(t, {
  name: 'shutdown-e2e',
  config,
  env,
  overrides: {
    SHUTDOWN_TIMEOUT_MS: '8000',
    METRICS_PORT: String(metricsPort),
    ALLOW_SERVICE_TOKEN_FALLBACK: 'true',
  },
})

/** A client that sends half a request's headers and then nothing. */
async function halfRequest(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.on('error', () => {})
  socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n')
  return socket
}

t.test('clients that sent half a request do not hold the shutdown to its deadline', async (t) => {
  // A review's example: Node stops timing out unfinished requests once the server closes, so
  // app.close() waited for these clients and the process died at the deadline (exit code 1)
  // without closing Redis and Postgres.
  const clients = [await halfRequest(Number(new URL(base).port)), await halfRequest(metricsPort)]
  t.teardown(() => {
    for (const c of clients) c.destroy()
  })
  // A request in a handler keeps the whole deadline: GitHub answers it after the cut (half of
  // SHUTDOWN_TIMEOUT_MS), and it still gets its answer (a second review: the cut dropped it).
  sim.setLatency(5000)
  t.teardown(() => sim.setLatency(0))
  const slow = fetch(`${base}/api/pods`)
  await new Promise((resolve) => setTimeout(resolve, 500))
  const exited = once(api.child, 'exit')
  api.child.kill('SIGTERM')
  // And its copies, as npm and tsx forward a signal sent to the process group (a trial:
  // close-with-grace took the first copy as a second signal and exited at once).
  api.child.kill('SIGTERM')
  api.child.kill('SIGINT')
  const answer = await slow
  t.equal(answer.status, 200, 'the request in its handler was answered')
  const [code, signal] = await exited
  t.same({ code, signal }, { code: 0, signal: null }, 'a graceful exit, not the deadline’s')
  t.match(api.logs.text, /"msg":"closing"/)
  t.notMatch(api.logs.text, /timeout|timed out|second signal/i)
})
