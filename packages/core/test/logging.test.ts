import { spawn, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { LOG_QUEUE_BYTES } from '@portico/core'
import t from 'tap'

const fixture = fileURLToPath(new URL('./fixtures/log-lines.fixture.ts', import.meta.url))
const indexes = (stdout: string) =>
  stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { i: number }).i)

t.test('every line logged before process.exit() reaches stdout, in order', async (t) => {
  // Far more than one buffer's worth, and a last partial buffer that only the exit flush writes.
  const count = 20_001
  const result = spawnSync(process.execPath, [...process.execArgv, fixture, String(count), 'exit'], {
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
  })
  t.equal(result.status, 0, result.stderr)
  t.same(
    indexes(result.stdout),
    Array.from({ length: count }, (_, i) => i),
  )
})

t.test('a line is written while the process runs, not held for a later write', async (t) => {
  const child = spawn(process.execPath, [...process.execArgv, fixture, '1', 'stay'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => void child.kill('SIGKILL'))
  let stdout = ''
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      if (stdout.endsWith('\n')) resolve(stdout)
    })
    child.once('exit', (code) => reject(new Error(`exited ${code} before writing: ${stdout}`)))
  })
  t.equal(child.exitCode, null, 'still running')
  t.same(indexes(line), [0])
})

t.test(
  'behind a reader that does not read, the queue stops at LOG_QUEUE_BYTES and counts what it drops',
  async (t) => {
    // 40 MB of lines, logged without yielding while nobody reads the pipe.
    const count = 40_000
    const child = spawn(process.execPath, [...process.execArgv, fixture, String(count), 'count'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    t.teardown(() => void child.kill('SIGKILL'))
    let stderr = ''
    const dropped = await new Promise<number>((resolve, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString()
        const m = /dropped=(\d+)/.exec(stderr)
        if (m) resolve(Number(m[1]))
      })
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)))
    })
    // Only now does the reader start: what was kept arrives, in order, then the process exits.
    let stdout = ''
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
    })
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
    t.equal(code, 0, stderr)
    const kept = indexes(stdout)
    t.ok(dropped > 0, `dropped ${dropped}`)
    t.equal(kept.length + dropped, count, 'every line was either written or counted as dropped')
    t.ok(stdout.length <= LOG_QUEUE_BYTES + 1024 * 1024, `kept ${stdout.length} bytes`)
    t.same(
      kept,
      [...kept].sort((a, b) => a - b),
      'in order',
    )
  },
)
