import { type ChildProcessByStdio, spawn } from 'node:child_process'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'

const fixture = fileURLToPath(new URL('./fixtures/log-lines.fixture.ts', import.meta.url))
const indexes = (stdout: string) =>
  stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { i: number }).i)

/** The fixture with `args`; killed (SIGKILL: the loader may hold SIGTERM) when the test ends. */
function start(t: Test, args: string[]): ChildProcessByStdio<null, Readable, Readable> {
  const child = spawn(process.execPath, [...process.execArgv, fixture, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => void child.kill('SIGKILL'))
  return child
}

/** Everything `stream` gives from now on, as text. */
function collect(stream: Readable): () => string {
  let text = ''
  // Decoded as a stream: a character split between two chunks is not garbled.
  stream.setEncoding('utf8')
  stream.on('data', (chunk: string) => {
    text += chunk
  })
  return () => text
}

/** The exit code, once the process has exited and its stdout and stderr are read to the end. */
const closed = (child: ChildProcessByStdio<null, Readable, Readable>) =>
  new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))

/** The exit code once the process exits (stdout may stay unread), or 'still running' after `ms`. */
const exitedWithin = (child: ChildProcessByStdio<null, Readable, Readable>, ms: number) =>
  Promise.race([
    new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))),
    new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), ms).unref()),
  ])

t.test('every line logged before process.exit() reaches stdout, in order', async (t) => {
  // More than a pipe's buffer, so the last lines are still queued when process.exit() runs.
  const count = 3001
  const child = start(t, [String(count), 'exit'])
  const stdout = collect(child.stdout)
  const stderr = collect(child.stderr)
  t.equal(await closed(child), 0, stderr())
  t.same(
    indexes(stdout()),
    Array.from({ length: count }, (_, i) => i),
  )
  const texts = new Set(
    stdout()
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { text: string }).text),
  )
  t.same([...texts], ['é€😀'], 'every line holds its multi-byte characters intact')
})

t.test('a line is written while the process runs, not held for a later write', async (t) => {
  const child = start(t, ['1', 'stay'])
  const stderr = collect(child.stderr)
  let stdout = ''
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      if (stdout.endsWith('\n')) resolve(stdout)
    })
    child.once('exit', (code) => reject(new Error(`exited ${code} before writing: ${stdout} ${stderr()}`)))
  })
  t.equal(child.exitCode, null, 'still running')
  t.same(indexes(line), [0])
})

t.test(
  'behind a reader that does not read, the queue stops at its bound and counts what it drops',
  async (t) => {
    // 2 MB of lines against a 256 KB bound, logged without yielding while nobody reads the pipe.
    const count = 2000
    const bound = 256 * 1024
    const child = start(t, [String(count), 'count', String(bound)])
    const stderr = collect(child.stderr)
    const dropped = await new Promise<number>((resolve, reject) => {
      child.stderr.on('data', () => {
        const m = /dropped=(\d+)/.exec(stderr())
        if (m) resolve(Number(m[1]))
      })
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr()}`)))
    })
    // Only now does the reader start: what was kept arrives, in order, then the process exits.
    const stdout = collect(child.stdout)
    t.equal(await closed(child), 0, stderr())
    const kept = indexes(stdout())
    t.ok(dropped > 0, `dropped ${dropped}`)
    t.equal(kept.length + dropped, count, 'every line was either written or counted as dropped')
    // The bound counts bytes (the padding is multi-byte): what was kept is one line short of it at most.
    const keptBytes = Buffer.byteLength(stdout())
    const line = Buffer.byteLength(stdout().split('\n')[0] ?? '') + 1
    t.ok(keptBytes <= bound && keptBytes > bound - line, `kept ${keptBytes} bytes of ${bound}`)
    t.same(
      kept,
      [...kept].sort((a, b) => a - b),
      'in order',
    )
  },
)

t.test('flushLogs: every line is written before it resolves true', async (t) => {
  const count = 3000
  // A long timeout: the reader reads, so only a loaded machine could make the flush slow.
  const child = start(t, [String(count), 'flush', String(16 * 1024 * 1024), '120000'])
  const stdout = collect(child.stdout)
  const stderr = collect(child.stderr)
  t.equal(await closed(child), 0, stderr())
  t.match(stderr(), /flushed=true/)
  t.same(
    indexes(stdout()),
    Array.from({ length: count }, (_, i) => i),
  )
})

t.test('flushLogs: behind a reader that does not read, it gives up and the process exits', async (t) => {
  // 3 MB of lines, far more than a pipe holds; stdout is never read, so nothing can drain.
  const child = start(t, ['3000', 'flush'])
  const stderr = collect(child.stderr)
  // Without the drop, pino's exit-time flushSync retries the full pipe and the process never exits.
  t.equal(await exitedWithin(child, 60_000), 0, stderr())
  t.match(stderr(), /flushed=false/)
})

t.test('abandonLogs: behind a reader that does not read, process.exit() is not held', async (t) => {
  // What a second signal or the shutdown deadline does: no waiting, the queued lines are dropped.
  const child = start(t, ['3000', 'abandon'])
  const stderr = collect(child.stderr)
  t.equal(await exitedWithin(child, 60_000), 0, stderr())
})
