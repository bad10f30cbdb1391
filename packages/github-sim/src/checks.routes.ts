import type { FastifyRequest } from 'fastify'
import { bodyOf, paginate, repoFor } from './access.js'
import type { ApiRouter } from './api.js'
import { ApiError, notFound, type SimContext, validationFailed } from './context.js'
import type { AppPermissions } from './github-apps.js'
import type { RepoRecord } from './state.js'
import type { SeedApplyOnMerge } from './types.js'
import { nodeId, repository, simpleUser } from './views.js'
import { type CheckRunRecord, checkRunJson, type StatusRecord } from './webhook-events.js'

type P = Record<string, string>
const params = (req: FastifyRequest) => req.params as P
const query = (req: FastifyRequest) => req.query as Record<string, string | undefined>
const STATUS_DOCS = 'https://docs.github.com/rest/commits/statuses'
const CHECKS_DOCS = 'https://docs.github.com/rest/checks/runs'
const STATES = ['error', 'failure', 'pending', 'success'] as const
const RUN_STATUSES = ['queued', 'in_progress', 'completed', 'waiting', 'requested', 'pending'] as const
const CONCLUSIONS = [
  'action_required',
  'cancelled',
  'failure',
  'neutral',
  'success',
  'skipped',
  'stale',
  'timed_out',
]
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')

/** Commit statuses and check runs of every repository, by repository id. */
export class ChecksStore {
  readonly statuses = new Map<number, StatusRecord[]>()
  readonly checkRuns = new Map<number, CheckRunRecord[]>()
  #next = 20_000_000_000

  nextId(): number {
    return this.#next++
  }
  statusesOf(repo: RepoRecord): StatusRecord[] {
    const l = this.statuses.get(repo.id) ?? []
    this.statuses.set(repo.id, l)
    return l
  }
  runsOf(repo: RepoRecord): CheckRunRecord[] {
    const l = this.checkRuns.get(repo.id) ?? []
    this.checkRuns.set(repo.id, l)
    return l
  }
}

const stores = new WeakMap<SimContext, ChecksStore>()
/** The checks store of a running simulator. */
export function checksOf(ctx: SimContext): ChecksStore {
  const s = stores.get(ctx) ?? new ChecksStore()
  stores.set(ctx, s)
  return s
}

/** Resolves a branch, tag or sha like GitHub's `{ref}` in commits routes, or 422 like GitHub. */
async function shaForRef(repo: RepoRecord, ref: string, doc: string): Promise<string> {
  const sha = await repo.git.resolveCommitish(ref)
  if (!sha) throw validationFailed(`No commit found for SHA: ${ref}`, doc)
  return sha
}

/** A GitHub App permission held by the caller's installation token, if it is one. */
function appGrant(
  ctx: SimContext,
  req: FastifyRequest,
): { appId: number; permissions: AppPermissions } | null {
  const token = req.sim.token
  const grant = token ? ctx.apps.grants.get(token.token) : undefined
  if (!grant || grant.installationId === undefined) return null
  const inst = ctx.apps.installations.get(grant.installationId)
  return { appId: grant.appId, permissions: grant.permissions ?? inst?.permissions ?? {} }
}

const needsWrite = (p: AppPermissions, name: string) => p[name] === 'write' || p[name] === 'admin'
const notAccessibleByIntegration = (doc: string) =>
  new ApiError(403, 'Resource not accessible by integration', { documentation_url: doc })

function statusJson(ctx: SimContext, repo: RepoRecord, s: StatusRecord) {
  const creator = ctx.world.user(s.creatorLogin)
  return {
    url: `${ctx.urls.api}/repos/${repo.owner}/${repo.name}/statuses/${s.sha}`,
    avatar_url: creator?.avatarUrl ?? null,
    id: s.id,
    node_id: nodeId('StatusContext', s.id),
    state: s.state,
    description: s.description,
    target_url: s.targetUrl,
    context: s.context,
    created_at: s.createdAt,
    updated_at: s.updatedAt,
    creator: creator ? simpleUser(creator, ctx.urls) : null,
  }
}

/** Commit statuses, check runs, and the "apply on merge" check run of the specs repository. */
export function registerChecksRoutes(
  api: ApiRouter,
  ctx: SimContext,
  applyOnMerge: Map<number, SeedApplyOnMerge>,
): void {
  const store = checksOf(ctx)
  const read = (req: FastifyRequest) => repoFor(ctx, req, params(req).owner!, params(req).repo!).repo

  api.post(
    '/repos/{owner}/{repo}/statuses/{sha}',
    async (req, reply) => {
      const doc = `${STATUS_DOCS}#create-a-commit-status`
      const grant = appGrant(ctx, req)
      if (grant && !needsWrite(grant.permissions, 'statuses')) {
        read(req)
        throw notAccessibleByIntegration(doc)
      }
      const { repo } = grant
        ? { repo: read(req) }
        : repoFor(ctx, req, params(req).owner!, params(req).repo!, 'write')
      const body = bodyOf(req)
      if (!STATES.includes(body.state as (typeof STATES)[number]))
        throw validationFailed('Validation Failed', doc, [
          {
            resource: 'Status',
            field: 'state',
            code: 'custom',
            message: `state is not included in the list`,
          },
        ])
      const sha = await repo.git.resolve(params(req).sha!)
      if (!sha || !/^[0-9a-f]{40}$/.test(params(req).sha!))
        throw validationFailed(`No commit found for SHA: ${params(req).sha}`, doc)
      const at = now()
      const s: StatusRecord = {
        id: store.nextId(),
        sha,
        state: body.state as StatusRecord['state'],
        context: typeof body.context === 'string' && body.context ? body.context : 'default',
        description: typeof body.description === 'string' ? body.description : null,
        targetUrl: typeof body.target_url === 'string' ? body.target_url : null,
        creatorLogin: req.sim.login!,
        createdAt: at,
        updatedAt: at,
      }
      store.statusesOf(repo).push(s)
      ctx.events.status(repo, s, req.sim.login)
      reply.code(201).header('location', `${ctx.urls.api}/repos/${repo.owner}/${repo.name}/statuses/${sha}`)
      return statusJson(ctx, repo, s)
    },
    { scopes: 'repo, repo:status' },
  )

  api.get(
    '/repos/{owner}/{repo}/commits/{ref}/status',
    async (req, reply) => {
      const repo = read(req)
      const sha = await shaForRef(
        repo,
        params(req).ref ?? '',
        `${STATUS_DOCS}#get-the-combined-status-for-a-specific-reference`,
      )
      const latest = new Map<string, StatusRecord>()
      for (const s of store.statusesOf(repo)) if (s.sha === sha) latest.set(s.context, s)
      const list = [...latest.values()].sort((a, b) => b.id - a.id)
      const state = list.some((s) => s.state === 'error' || s.state === 'failure')
        ? 'failure'
        : list.length === 0 || list.some((s) => s.state === 'pending')
          ? 'pending'
          : 'success'
      const api = `${ctx.urls.api}/repos/${repo.owner}/${repo.name}`
      return {
        state,
        statuses: paginate(req, reply, list).map((s) => {
          const { creator: _c, ...simple } = statusJson(ctx, repo, s)
          return simple
        }),
        sha,
        total_count: list.length,
        repository: repository(ctx.world, repo, ctx.urls, null),
        commit_url: `${api}/commits/${sha}`,
        url: `${api}/commits/${sha}/status`,
      }
    },
    { scopes: 'repo, repo:status' },
  )

  api.get(
    '/repos/{owner}/{repo}/commits/{ref}/statuses',
    async (req, reply) => {
      const repo = read(req)
      const sha = await shaForRef(
        repo,
        params(req).ref ?? '',
        `${STATUS_DOCS}#list-commit-statuses-for-a-reference`,
      )
      const list = store
        .statusesOf(repo)
        .filter((s) => s.sha === sha)
        .sort((a, b) => b.id - a.id)
      return paginate(req, reply, list).map((s) => statusJson(ctx, repo, s))
    },
    { scopes: 'repo, repo:status' },
  )

  const parseOutput = (raw: unknown, doc: string) => {
    if (raw === undefined) return undefined
    const o = raw as Record<string, unknown> | null
    if (!o || typeof o !== 'object' || typeof o.title !== 'string' || typeof o.summary !== 'string')
      throw validationFailed('Invalid request.\n\n"title", "summary" weren\'t supplied.', doc)
    return { title: o.title, summary: o.summary, text: typeof o.text === 'string' ? o.text : null }
  }

  /** Applies status/conclusion fields of a create or update body; returns whether the run completed now. */
  const applyRunFields = (run: CheckRunRecord, body: Record<string, unknown>, doc: string): boolean => {
    const wasCompleted = run.status === 'completed'
    if (body.status !== undefined) {
      if (!RUN_STATUSES.includes(body.status as (typeof RUN_STATUSES)[number]))
        throw validationFailed('Invalid request.\n\nstatus is not included in the list', doc)
      run.status = body.status as CheckRunRecord['status']
    }
    if (body.conclusion !== undefined) {
      if (!CONCLUSIONS.includes(String(body.conclusion)))
        throw validationFailed('Invalid request.\n\nconclusion is not included in the list', doc)
      run.conclusion = String(body.conclusion)
      run.status = 'completed'
    }
    if (run.status === 'completed' && !run.conclusion)
      throw validationFailed('Invalid request.\n\nconclusion is required when status is completed.', doc)
    if (typeof body.details_url === 'string') run.detailsUrl = body.details_url
    if (typeof body.external_id === 'string') run.externalId = body.external_id
    if (typeof body.name === 'string' && body.name) run.name = body.name
    if (typeof body.started_at === 'string') run.startedAt = body.started_at
    const output = parseOutput(body.output, doc)
    if (output) run.output = output
    if (run.status === 'in_progress' && !run.startedAt) run.startedAt = now()
    if (run.status === 'completed') {
      run.completedAt = typeof body.completed_at === 'string' ? body.completed_at : (run.completedAt ?? now())
      run.startedAt ??= run.completedAt
    }
    return !wasCompleted && run.status === 'completed'
  }

  /** Check runs are written by GitHub Apps only, through an installation token with `checks: write`. */
  const checksWriter = (req: FastifyRequest, doc: string) => {
    const grant = appGrant(ctx, req)
    const repo = read(req)
    if (!grant) throw new ApiError(403, 'You must authenticate via a GitHub App.', { documentation_url: doc })
    if (!needsWrite(grant.permissions, 'checks')) throw notAccessibleByIntegration(doc)
    return { repo, appId: grant.appId }
  }

  api.post('/repos/{owner}/{repo}/check-runs', async (req, reply) => {
    const doc = `${CHECKS_DOCS}#create-a-check-run`
    const { repo, appId } = checksWriter(req, doc)
    const body = bodyOf(req)
    if (typeof body.name !== 'string' || !body.name)
      throw validationFailed('Invalid request.\n\n"name" wasn\'t supplied.', doc)
    if (typeof body.head_sha !== 'string' || !body.head_sha)
      throw validationFailed('Invalid request.\n\n"head_sha" wasn\'t supplied.', doc)
    const sha = /^[0-9a-f]{40}$/.test(body.head_sha) ? await repo.git.resolve(body.head_sha) : null
    if (!sha) throw validationFailed(`No commit found for SHA: ${body.head_sha}`, doc)
    const run: CheckRunRecord = {
      id: store.nextId(),
      appId,
      headSha: sha,
      name: body.name,
      status: 'queued',
      conclusion: null,
      detailsUrl: null,
      externalId: null,
      startedAt: null,
      completedAt: null,
      output: { title: null, summary: null, text: null },
    }
    const completed = applyRunFields(run, body, doc)
    run.startedAt ??= now()
    store.runsOf(repo).push(run)
    ctx.events.checkRun(repo, run, 'created', req.sim.login)
    if (completed) ctx.events.checkRun(repo, run, 'completed', req.sim.login)
    reply.code(201)
    return checkRunJson(ctx, repo, run)
  })

  const runOf = (req: FastifyRequest, repo: RepoRecord) => {
    const run = store.runsOf(repo).find((r) => String(r.id) === params(req).check_run_id)
    if (!run) throw notFound(`${CHECKS_DOCS}#get-a-check-run`)
    return run
  }

  api.patch('/repos/{owner}/{repo}/check-runs/{check_run_id}', async (req) => {
    const doc = `${CHECKS_DOCS}#update-a-check-run`
    const { repo, appId } = checksWriter(req, doc)
    const run = runOf(req, repo)
    if (run.appId !== appId) throw notAccessibleByIntegration(doc)
    const completed = applyRunFields(run, bodyOf(req), doc)
    if (completed) ctx.events.checkRun(repo, run, 'completed', req.sim.login)
    return checkRunJson(ctx, repo, run)
  })

  api.get('/repos/{owner}/{repo}/check-runs/{check_run_id}', async (req) => {
    const repo = read(req)
    return checkRunJson(ctx, repo, runOf(req, repo))
  })

  api.get(
    '/repos/{owner}/{repo}/commits/{ref}/check-runs',
    async (req, reply) => {
      const repo = read(req)
      const sha = await shaForRef(
        repo,
        params(req).ref ?? '',
        `${CHECKS_DOCS}#list-check-runs-for-a-git-reference`,
      )
      const q = query(req)
      let runs = store
        .runsOf(repo)
        .filter((r) => r.headSha === sha)
        .sort((a, b) => b.id - a.id)
      if (q.check_name) runs = runs.filter((r) => r.name === q.check_name)
      if (q.status) runs = runs.filter((r) => r.status === q.status)
      if ((q.filter ?? 'latest') === 'latest') {
        const seen = new Set<string>()
        runs = runs.filter((r) => {
          const key = `${r.appId}:${r.name}`
          if (seen.has(key)) return false
          seen.add(key)
          return true
        })
      }
      return {
        total_count: runs.length,
        check_runs: paginate(req, reply, runs).map((r) => checkRunJson(ctx, repo, r)),
      }
    },
    { scopes: 'repo' },
  )

  /** The specs repository's CI stand-in: a check run on each merge commit of the default branch. */
  ctx.afterMerge = (repo, mergeSha) => {
    const cfg = applyOnMerge.get(repo.id)
    if (!cfg) return
    const app = cfg.app
      ? ctx.apps.bySlug(cfg.app)
      : ctx.apps.apps.get(ctx.apps.installationsCovering(repo)[0]?.appId ?? -1)
    if (!app) {
      ctx.warn(`apply_on_merge on ${repo.owner}/${repo.name}: no GitHub App installed to post the check run`)
      return
    }
    const run: CheckRunRecord = {
      id: store.nextId(),
      appId: app.id,
      headSha: mergeSha,
      name: cfg.name ?? 'apply',
      status: 'in_progress',
      conclusion: null,
      detailsUrl: null,
      externalId: null,
      startedAt: now(),
      completedAt: null,
      output: { title: null, summary: null, text: null },
    }
    run.detailsUrl = `${ctx.urls.web}/${repo.owner}/${repo.name}/actions/runs/${run.id}`
    store.runsOf(repo).push(run)
    ctx.events.checkRun(repo, run, 'created', app.botLogin)
    ctx.hooks.track(
      new Promise<void>((resolve) =>
        setTimeout(() => {
          run.status = 'completed'
          run.conclusion = cfg.conclusion
          run.completedAt = now()
          run.output = {
            title: cfg.conclusion === 'success' ? 'Applied' : 'Apply failed',
            summary:
              cfg.conclusion === 'success'
                ? 'The merged pod specs were applied.'
                : 'Applying the merged pod specs failed.',
            text: null,
          }
          ctx.events.checkRun(repo, run, 'completed', app.botLogin)
          resolve()
        }, cfg.delay_ms ?? 50),
      ),
    )
  }
}
