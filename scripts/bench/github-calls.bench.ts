/**
 * GitHub calls charged to the rate limit (the simulator's ledger, `counted: true`) for the pods
 * routes and one deploy, next to the old directory-walking listing of 3 customers × 3 envs
 * (one contents call for the specs folder, one per customer, one per environment folder and
 * one per spec file: 22). Targets: cold listing ≤ 2, warm 0, get pod 1, deploy ≤ 5.
 */
import { createOctokit } from '@portico/core'
import { startTestSimulator, testConfig } from '@portico/testing'
import { processors, startWorker } from '@portico/worker'
import Fastify from 'fastify'
import { pino } from 'pino'
import app from '../../apps/api/src/app.js'
import { serverOptions } from '../../apps/api/src/server-options.js'
import { signIn } from '../../apps/api/test/helper.js'

const teardowns: (() => unknown)[] = []
const t = { teardown: (fn: () => unknown) => teardowns.push(fn) }

try {
  const { sim, env: simEnv } = await startTestSimulator(t)
  const token = String(simEnv.GH_TOKEN)
  const env = { ...simEnv, LOG_LEVEL: 'silent', GITHUB_WRITE_SPACING_MS: '0' }
  const start = async (extra: Record<string, string> = {}) => {
    const config = await testConfig(t, { ...env, ...extra })
    const api = Fastify(serverOptions(config, false))
    await api.register(app, { config })
    await api.ready()
    t.teardown(() => api.close())
    // Reads and writes need a signed-in person (the service-token fallback is off by default).
    const { cookie } = await signIn(api, sim, 'octocat')
    const inject = (opts: { url: string; method?: 'GET' | 'POST'; payload?: Record<string, unknown> }) =>
      api.inject({ method: opts.method ?? 'GET', url: opts.url, payload: opts.payload, headers: { cookie } })
    return { config, inject }
  }
  const api = await start()
  const gated = await start({ ACCESS_ORG: 'acme' })
  const worker = await startWorker(
    { ...api.config, workerQueues: ['deploy'] },
    processors,
    pino({ level: 'silent' }),
  )
  t.teardown(() => worker.close())

  /** Counted GitHub calls made while `work` runs. */
  const measure = async (work: () => Promise<unknown>): Promise<number> => {
    sim.ledger.clear()
    await work()
    return sim.ledger.count({ counted: true, kind: 'api' })
  }
  const ok = async (res: { statusCode: number; body: string }, status = 200) => {
    if (res.statusCode !== status) throw new Error(`expected ${status}, got ${res.statusCode}: ${res.body}`)
  }

  const oldWalk = await measure(async () => {
    const octokit = createOctokit({ token, baseUrl: sim.apiUrl, retries: 0 })
    const ls = async (path: string) =>
      (await octokit.rest.repos.getContent({ owner: 'acme', repo: 'infra-specs', path, ref: 'main' }))
        .data as { name: string; type: string; path: string }[]
    for (const customer of (await ls('infra')).filter((e) => e.type === 'dir')) {
      for (const env of (await ls(customer.path)).filter((e) => e.type === 'dir')) {
        for (const file of (await ls(env.path)).filter((e) => e.name === 'spec.yml')) {
          await octokit.rest.repos.getContent({
            owner: 'acme',
            repo: 'infra-specs',
            path: file.path,
            ref: 'main',
          })
        }
      }
    }
  })
  const cold = await measure(async () => ok(await api.inject({ url: '/api/pods' })))
  const warm = await measure(async () => ok(await api.inject({ url: '/api/pods' })))
  const gatedCold = await measure(async () => ok(await gated.inject({ url: '/api/pods' })))
  const gatedWarm = await measure(async () => ok(await gated.inject({ url: '/api/pods' })))
  const getPod = await measure(async () => ok(await api.inject({ url: '/api/pod/alpha/dev' })))
  sim.truncateTrees(true)
  await api.inject({ method: 'POST', url: '/api/refresh' })
  const truncated = await measure(async () => ok(await api.inject({ url: '/api/pods' })))
  sim.truncateTrees(false)
  const deploy = await measure(async () =>
    ok(
      await api.inject({
        method: 'POST',
        url: '/api/pod',
        payload: {
          customer: 'alpha',
          env: 'dev',
          spec: { instance_name: 'alpha-dev-02', waf_enabled: false },
        },
      }),
      201,
    ),
  )

  console.log(`old_directory_walk_listing_calls: ${oldWalk}`)
  console.log(`cold_listing_calls: ${cold}`)
  console.log(`warm_listing_calls: ${warm}`)
  console.log(`cold_listing_calls_with_access_org_gate: ${gatedCold}`)
  console.log(`warm_listing_calls_with_access_org_gate: ${gatedWarm}`)
  console.log(`truncated_tree_fallback_listing_calls: ${truncated}`)
  console.log(`get_pod_calls: ${getPod}`)
  console.log(`deploy_calls: ${deploy}`)
} finally {
  for (const fn of teardowns.reverse()) await fn()
}
