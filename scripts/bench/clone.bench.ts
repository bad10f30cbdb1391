/**
 * Clone job wall time vs a raw `git clone --depth 1 --single-branch --no-tags` (issue 12's baseline)
 * of the same simulator repository. The job time is BullMQ's processedOn → finishedOn of a real clone job (clone, commit lookup,
 * status writes and analysis) run by the real processor; the raw clone gets the same
 * credentials the same way (an extra header through GIT_CONFIG_* variables). Target ratio ≤ 1.15; the
 * clone and analysis phases are reported separately (from the worker's own histograms).
 *
 * One clone's transfer varies by ±15% from the next on a 2-core virtual machine, and the machine's
 * speed drifts within a run, so each pair runs back to back in ABBA order (raw, job, job, raw, …)
 * and the ratio is the median of the pairs' ratios; the ratio of the two medians is printed too.
 * Env: BENCH_CLONE_PAIRS (default 8).
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { cloneJobId, encrypt } from '@portico/core'
import { createDb, insertConnection } from '@portico/db'
import { defaultSeed, startSimulator } from '@portico/github-sim'
import { testConfig } from '@portico/testing'
import { analysisDuration, cloneDuration, processors, startWorker } from '@portico/worker'
import { pino } from 'pino'

const PAIRS = Number(process.env.BENCH_CLONE_PAIRS ?? 8)
if (!Number.isInteger(PAIRS) || PAIRS < 1)
  throw new Error('BENCH_CLONE_PAIRS must be a whole number of at least 1')
/** A realistic repository: 2,000 files of ~10.5 KB, over 20 MB in all (issue 12). */
const FILES = 2000
const FILE_BYTES = 10_600
const teardowns: (() => unknown)[] = []
const t = { teardown: (fn: () => unknown) => teardowns.push(fn) }

/** Deterministic, poorly compressible text files, so the transfer is real work. */
function repoFiles(): Record<string, string> {
  const files: Record<string, string> = { 'README.md': '# bench\n' }
  for (let i = 0; i < FILES; i++) {
    let text = ''
    for (let j = 0; text.length < FILE_BYTES; j++)
      text += createHash('sha256').update(`${i}:${j}`).digest('base64')
    files[`src/module${i}/data.txt`] = text
  }
  files['src/server.js'] = "import express from 'express'\nconst app = express()\napp.get('/health', h)\n"
  return files
}

/** Sum in ms of a histogram's observations so far (the worker records them in this process). */
async function observedMs(h: typeof cloneDuration): Promise<number> {
  const sum = (await h.get()).values.find((v) => v.metricName?.endsWith('_sum'))
  return (sum?.value ?? 0) * 1000
}

/** The median (the mean of the middle two for an even count). */
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2
}

try {
  const sim = await startSimulator({
    seed: {
      ...defaultSeed,
      repos: [
        ...(defaultSeed.repos ?? []),
        { owner: 'acme', name: 'bench', private: true, files: repoFiles() },
      ],
    },
  })
  t.teardown(() => sim.close())
  const token = 'ghp_octocat00000000000000000000000000001'
  const config = await testConfig(t, { GITHUB_URL: sim.url, GITHUB_API_URL: sim.apiUrl, LOG_LEVEL: 'silent' })
  const db = createDb(config)
  t.teardown(() => db.destroy())
  const runtime = await startWorker(
    { ...config, workerQueues: ['clone'] },
    processors,
    pino({ level: 'silent' }),
  )
  t.teardown(() => runtime.close())
  const tenant = await db
    .insertInto('tenants')
    .values({ slug: 'bench', name: 'bench' })
    .returning('id')
    .executeTakeFirstOrThrow()
  const rawDir = await mkdtemp(path.join(tmpdir(), 'portico-bench-raw-'))
  t.teardown(() => rm(rawDir, { recursive: true, force: true }))

  const rawClone = async (dest: string): Promise<number> => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      GIT_TERMINAL_PROMPT: '0',
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.extraHeader',
      GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`,
    }
    const started = performance.now()
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(
        'git',
        ['clone', '--depth', '1', '--single-branch', '--no-tags', '--', `${sim.url}/acme/bench.git`, dest],
        {
          env,
          stdio: 'ignore',
        },
      )
      child.on('close', resolve)
    })
    if (code !== 0) throw new Error(`raw git clone exited ${code}`)
    return performance.now() - started
  }

  const jobClone = async (
    i: number,
  ): Promise<{ processing: number; endToEnd: number; clone: number; analysis: number }> => {
    const clone0 = await observedMs(cloneDuration)
    const analysis0 = await observedMs(analysisDuration)
    const project = await db
      .insertInto('projects')
      .values({ tenant_id: tenant.id, name: `p${i}`, slug: `p${i}` })
      .returning('id')
      .executeTakeFirstOrThrow()
    const row = await insertConnection(db, {
      tenant_id: tenant.id,
      project_id: project.id,
      repo_url: `${sim.url}/acme/bench`,
      owner: 'acme',
      repo: 'bench',
      encrypted_token: encrypt(config.keyring, token),
    })
    const started = performance.now()
    const job = await runtime.ctx.queues.clone.add(
      'clone',
      { connectionId: row.id },
      { jobId: cloneJobId(row.id) },
    )
    for (;;) {
      const state = await runtime.ctx.queues.clone.getJobState(job.id!)
      if (state === 'completed') break
      if (state === 'failed') throw new Error('clone job failed')
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    const endToEnd = performance.now() - started
    const done = await runtime.ctx.queues.clone.getJob(job.id!)
    return {
      processing: (done?.finishedOn ?? 0) - (done?.processedOn ?? 0),
      endToEnd,
      clone: (await observedMs(cloneDuration)) - clone0,
      analysis: (await observedMs(analysisDuration)) - analysis0,
    }
  }

  // Warm-up: the first clone of each kind pays for cold caches.
  await rawClone(path.join(rawDir, 'warm'))
  await jobClone(-1)
  const raw: number[] = []
  const jobs: number[] = []
  const endToEnd: number[] = []
  const clonePhase: number[] = []
  const analysisPhase: number[] = []
  for (let i = 0; i < PAIRS; i++) {
    const measureRaw = async () => raw.push(await rawClone(path.join(rawDir, `r${i}`)))
    const measureJob = async () => {
      const r = await jobClone(i)
      jobs.push(r.processing)
      endToEnd.push(r.endToEnd)
      clonePhase.push(r.clone)
      analysisPhase.push(r.analysis)
    }
    // ABBA: a drift of the machine's speed falls on both sides.
    if (i % 2 === 0) {
      await measureRaw()
      await measureJob()
    } else {
      await measureJob()
      await measureRaw()
    }
  }
  const pairRatios = (xs: number[]) => xs.map((x, i) => x / (raw[i] ?? Number.NaN))
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' ')
  const rawMs = median(raw)
  const jobMs = median(jobs)
  const mb = (FILES * FILE_BYTES) / 1e6
  console.log(`clone repository: acme/bench (${FILES} files, ~${mb.toFixed(0)} MB, depth 1), ${PAIRS} pairs`)
  console.log(`raw git clone --depth 1 --single-branch --no-tags ms: median ${rawMs.toFixed(0)}`)
  console.log(`clone job wall time ms: median ${jobMs.toFixed(0)}`)
  console.log(`clone job enqueue to completed ms: median ${median(endToEnd).toFixed(0)}`)
  console.log(`clone phase ms (git clone in the job): median ${median(clonePhase).toFixed(0)}`)
  console.log(`analysis phase ms: median ${median(analysisPhase).toFixed(0)}`)
  console.log(
    `clone phase / raw git clone ratio: ${median(pairRatios(clonePhase)).toFixed(3)} median of pairs (${fmt(pairRatios(clonePhase))}) (target <= 1.15)`,
  )
  console.log(
    `clone job / raw git clone ratio, of the medians: ${(jobMs / rawMs).toFixed(3)} (target <= 1.15)`,
  )
  console.log(
    `clone job / raw git clone ratio: ${median(pairRatios(jobs)).toFixed(3)} median of pairs (${fmt(pairRatios(jobs))}) (target <= 1.15)`,
  )
} finally {
  for (const fn of teardowns.reverse()) await fn()
}
