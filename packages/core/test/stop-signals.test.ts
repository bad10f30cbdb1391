import t from 'tap'
import { onStopSignals, type StopSignal } from '../src/index.js'

// A signal sent to a process group reaches the process once from the kernel and again from each
// launcher that forwards it (npm, tsx): those copies are one request, a later signal another.
t.test('copies of the first signal are one request; a later one asks again', async (t) => {
  const calls: string[] = []
  const listeners = process.listenerCount('SIGTERM')
  const off = onStopSignals(
    {
      stop: (signal: StopSignal) => calls.push(`stop ${signal}`),
      again: (signal: StopSignal) => calls.push(`again ${signal}`),
    },
    100,
  )
  t.teardown(off)
  process.emit('SIGTERM', 'SIGTERM')
  process.emit('SIGTERM', 'SIGTERM')
  process.emit('SIGINT', 'SIGINT')
  t.same(calls, ['stop SIGTERM'], 'copies within the window are ignored')
  await new Promise((resolve) => setTimeout(resolve, 150))
  process.emit('SIGINT', 'SIGINT')
  t.same(calls, ['stop SIGTERM', 'again SIGINT'])
  off()
  t.equal(process.listenerCount('SIGTERM'), listeners, 'no listener after the returned function ran')
})
