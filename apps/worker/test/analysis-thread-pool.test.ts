import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import {
  analysisThreadCounts,
  analyzeInThread,
  retainAnalysisThreads,
} from '../src/analysis/analyze-in-thread.js'

const ROUTES = 50

/** A repository of `ROUTES` Express routes, one per file. */
async function repo(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), 'portico-pool-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  for (let i = 0; i < ROUTES; i++) {
    await writeFile(path.join(root, `r${i}.js`), `const express = require('express')\napp.get('/r${i}', h)\n`)
  }
  return root
}

t.test('a retained thread is started ahead and serves analysis after analysis', async (t) => {
  const root = await repo(t)
  const release = retainAnalysisThreads()
  t.teardown(release)
  const before = analysisThreadCounts()
  t.equal(before.idle, 1, 'a thread waits before the first job')
  for (let i = 0; i < 3; i++) {
    const result = await analyzeInThread(root, { timeoutMs: 60_000 })
    t.equal(result.routesCount, ROUTES)
    t.equal(result.summary.timed_out, false)
  }
  t.same(analysisThreadCounts(), before, 'the same thread did all three, and is parked again')
  await release()
  t.equal(analysisThreadCounts().idle, 0, 'released: the parked thread is terminated')
})

t.test('an aborted analysis terminates its thread; a fresh one serves the next job', async (t) => {
  const root = await repo(t)
  const release = retainAnalysisThreads()
  t.teardown(release)
  const { started } = analysisThreadCounts()
  const shutdown = new AbortController()
  const aborted = analyzeInThread(root, { timeoutMs: 60_000, signal: shutdown.signal })
  shutdown.abort(new Error('shutting down'))
  await t.rejects(aborted, /shutting down/)
  t.same(analysisThreadCounts(), { started: started + 1, idle: 1 }, 'replaced, not reused')
  const next = await analyzeInThread(root, { timeoutMs: 60_000 })
  t.equal(next.routesCount, ROUTES, 'the replacement analyses the whole repository')
  t.equal(next.summary.truncated, false)
})

t.test('an analysis over its budget ends timed out; the next one is complete', async (t) => {
  const root = await repo(t)
  const release = retainAnalysisThreads()
  t.teardown(release)
  // No grace: either the thread notices the deadline first (its partial result) or it is
  // terminated and replaced (an empty one). Both are a timed-out summary.
  const late = await analyzeInThread(root, { timeoutMs: 0, graceMs: 0 })
  t.equal(late.summary.timed_out, true)
  t.equal(late.summary.truncated, true)
  t.ok(late.routesCount < ROUTES)
  const next = await analyzeInThread(root, { timeoutMs: 60_000 })
  t.equal(next.routesCount, ROUTES)
  t.equal(next.summary.timed_out, false)
  t.ok(analysisThreadCounts().idle <= 2, 'the pool keeps at most two idle threads')
})

t.test('concurrent analyses each get a thread; at most two stay parked', async (t) => {
  const root = await repo(t)
  const results = await Promise.all(
    Array.from({ length: 4 }, () => analyzeInThread(root, { timeoutMs: 60_000 })),
  )
  t.same(
    results.map((r) => r.routesCount),
    [ROUTES, ROUTES, ROUTES, ROUTES],
  )
  t.ok(analysisThreadCounts().idle <= 2)
})
