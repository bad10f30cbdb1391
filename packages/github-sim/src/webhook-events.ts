import { installationJson } from './apps.views.js'
import type { SimContext } from './context.js'
import { git } from './git.js'
import type { InstallationRecord } from './github-apps.js'
import type { PullRecord, RepoRecord } from './state.js'
import { nodeId, pullRequest, repository, simpleUser } from './views.js'
import type { WebhookDeliveries } from './webhook-deliveries.js'

/** A commit status (`POST /repos/{owner}/{repo}/statuses/{sha}`). */
export interface StatusRecord {
  id: number
  sha: string
  state: 'error' | 'failure' | 'pending' | 'success'
  context: string
  description: string | null
  targetUrl: string | null
  creatorLogin: string
  createdAt: string
  updatedAt: string
}

/** A check run (`POST /repos/{owner}/{repo}/check-runs`, Apps only). */
export interface CheckRunRecord {
  id: number
  appId: number
  headSha: string
  name: string
  status: 'queued' | 'in_progress' | 'completed' | 'waiting' | 'requested' | 'pending'
  conclusion: string | null
  detailsUrl: string | null
  externalId: string | null
  startedAt: string | null
  completedAt: string | null
  output: { title: string | null; summary: string | null; text: string | null }
}

/**
 * The events the simulator sends, one method per GitHub event. Each builds GitHub's payload and
 * delivers it to the repository's hooks subscribed to the event and to the webhook of every App
 * installed on the repository and subscribed to it (App deliveries carry `installation`).
 * `installation` / `installation_repositories` go to the App's webhook only, whatever its events.
 */
export interface SimEvents {
  push(repo: RepoRecord, ref: string, before: string, after: string, pusherLogin: string | null): void
  pullRequest(
    repo: RepoRecord,
    pr: PullRecord,
    action: 'opened' | 'closed' | 'reopened' | 'edited' | 'synchronize',
    senderLogin: string | null,
  ): void
  status(repo: RepoRecord, status: StatusRecord, senderLogin: string | null): void
  checkRun(
    repo: RepoRecord,
    run: CheckRunRecord,
    action: 'created' | 'completed' | 'rerequested',
    senderLogin: string | null,
  ): void
  /** `renamed` ({ repository: { name: { from } } }), `transferred` ({ owner: { from: { user|organization } } }), `deleted`, … */
  repository(
    repo: RepoRecord,
    action: string,
    changes: Record<string, unknown> | undefined,
    senderLogin: string | null,
  ): void
  installation(
    inst: InstallationRecord,
    action: 'created' | 'deleted' | 'suspend' | 'unsuspend',
    senderLogin: string | null,
  ): void
  installationRepositories(
    inst: InstallationRecord,
    action: 'added' | 'removed',
    added: number[],
    removed: number[],
    senderLogin: string | null,
  ): void
  /** `github_app_authorization` revoked, to App `appId`'s webhook: `login` revoked its authorization. */
  appAuthorizationRevoked(appId: number, login: string): void
}

const ZERO = '0000000000000000000000000000000000000000'

/** Builds SimEvents over the delivery engine. */
export function createEvents(ctx: SimContext, deliveries: WebhookDeliveries): SimEvents {
  const { world } = ctx
  const sender = (login: string | null) => {
    const u = login ? world.user(login) : undefined
    return u ? simpleUser(u, ctx.urls) : undefined
  }
  const repoJson = (repo: RepoRecord) => repository(world, repo, ctx.urls, null)

  /** Sends `event` about `repo` to its hooks and to the Apps installed on it. */
  const dispatch = (repo: RepoRecord, event: string, payload: Record<string, unknown>) => {
    for (const hook of deliveries.repoHooks(repo.id)) {
      if (hook.active && (hook.events.includes(event) || hook.events.includes('*')))
        deliveries.deliver(hook, event, payload)
    }
    for (const inst of ctx.apps.installationsCovering(repo)) {
      const app = ctx.apps.apps.get(inst.appId)
      const hook = deliveries.appHook(inst.appId)
      if (!app || !hook?.active || !app.events.includes(event)) continue
      deliveries.deliver(hook, event, {
        ...payload,
        installation: { id: inst.id, node_id: nodeId('Installation', inst.id) },
      })
    }
  }

  const toApp = (inst: InstallationRecord, event: string, payload: Record<string, unknown>) => {
    const hook = deliveries.appHook(inst.appId)
    if (hook?.active) deliveries.deliver(hook, event, payload)
  }

  const repoBrief = (r: RepoRecord) => ({
    id: r.id,
    node_id: nodeId('Repository', r.id),
    name: r.name,
    full_name: `${r.owner}/${r.name}`,
    private: r.private,
  })

  return {
    push(repo, ref, before, after, pusherLogin) {
      deliveries.track(
        (async () => {
          const commits = after === ZERO ? [] : await pushedCommits(repo, before, after)
          const api = `${ctx.urls.web}/${repo.owner}/${repo.name}`
          const pusher = pusherLogin ? world.user(pusherLogin) : undefined
          const toJson = (c: PushedCommit) => ({
            id: c.sha,
            tree_id: c.tree,
            distinct: true,
            message: c.message,
            timestamp: c.timestamp,
            url: `${api}/commit/${c.sha}`,
            author: c.author,
            committer: c.committer,
            added: c.added,
            removed: c.removed,
            modified: c.modified,
          })
          dispatch(repo, 'push', {
            ref,
            before,
            after,
            created: before === ZERO,
            deleted: after === ZERO,
            forced: false,
            base_ref: null,
            compare: `${api}/compare/${before.slice(0, 12)}...${after.slice(0, 12)}`,
            commits: commits.map(toJson),
            head_commit: commits.length ? toJson(commits[commits.length - 1]!) : null,
            repository: repoJson(repo),
            pusher: { name: pusher?.login ?? 'github', email: pusher?.email ?? null },
            sender: sender(pusherLogin),
          })
        })(),
      )
    },

    pullRequest(repo, pr, action, senderLogin) {
      deliveries.track(
        (async () => {
          const commits = await repo.git.countAhead(pr.base.sha, pr.head.sha).catch(() => 0)
          const diff = await repo.git
            .diffStat(pr.base.sha, pr.head.sha)
            .catch(() => ({ additions: 0, deletions: 0, files: 0 }))
          dispatch(repo, 'pull_request', {
            action,
            number: pr.number,
            pull_request: pullRequest(world, repo, ctx.urls, pr, null, { commits, ...diff }),
            repository: repoJson(repo),
            sender: sender(senderLogin),
          })
        })(),
      )
    },

    status(repo, s, senderLogin) {
      deliveries.track(
        (async () => {
          const c = await repo.git.readCommit(s.sha)
          const web = `${ctx.urls.web}/${repo.owner}/${repo.name}`
          dispatch(repo, 'status', {
            id: s.id,
            sha: s.sha,
            name: `${repo.owner}/${repo.name}`,
            target_url: s.targetUrl,
            avatar_url: null,
            context: s.context,
            description: s.description,
            state: s.state,
            commit: {
              sha: c.sha,
              node_id: nodeId('Commit', c.sha),
              commit: { author: c.author, committer: c.committer, message: c.message.replace(/\n$/, '') },
              url: `${ctx.urls.api}/repos/${repo.owner}/${repo.name}/commits/${c.sha}`,
              html_url: `${web}/commit/${c.sha}`,
              parents: c.parents.map((p) => ({ sha: p })),
            },
            branches: (await repo.git.listRefs('refs/heads/'))
              .filter((r) => r.sha === s.sha)
              .map((r) => ({
                name: r.ref.slice('refs/heads/'.length),
                commit: { sha: r.sha },
                protected: false,
              })),
            created_at: s.createdAt,
            updated_at: s.updatedAt,
            repository: repoJson(repo),
            sender: sender(senderLogin),
          })
        })(),
      )
    },

    checkRun(repo, run, action, senderLogin) {
      dispatch(repo, 'check_run', {
        action,
        check_run: checkRunJson(ctx, repo, run),
        repository: repoJson(repo),
        sender: sender(senderLogin),
      })
    },

    repository(repo, action, changes, senderLogin) {
      dispatch(repo, 'repository', {
        action,
        ...(changes ? { changes } : {}),
        repository: repoJson(repo),
        sender: sender(senderLogin),
      })
    },

    installation(inst, action, senderLogin) {
      const app = ctx.apps.apps.get(inst.appId)
      if (!app) return
      toApp(inst, 'installation', {
        action,
        installation: installationJson(world, app, inst, ctx.urls),
        repositories: ctx.apps.repositoriesOf(inst).map(repoBrief),
        requester: null,
        sender: sender(senderLogin),
      })
    },

    installationRepositories(inst, action, added, removed, senderLogin) {
      const app = ctx.apps.apps.get(inst.appId)
      if (!app) return
      const byId = (id: number) => [...world.repos.values()].find((r) => r.id === id)
      const brief = (ids: number[]) => ids.flatMap((id) => (byId(id) ? [repoBrief(byId(id)!)] : []))
      toApp(inst, 'installation_repositories', {
        action,
        installation: installationJson(world, app, inst, ctx.urls),
        repository_selection: inst.repositorySelection,
        repositories_added: brief(added),
        repositories_removed: brief(removed),
        requester: null,
        sender: sender(senderLogin),
      })
    },

    appAuthorizationRevoked(appId, login) {
      // GitHub's payload is only the action and the user (no installation, no repository).
      const hook = deliveries.appHook(appId)
      if (hook?.active)
        deliveries.deliver(hook, 'github_app_authorization', { action: 'revoked', sender: sender(login) })
    },
  }
}

/** GitHub's `check-run` object. */
export function checkRunJson(ctx: SimContext, repo: RepoRecord, run: CheckRunRecord) {
  const app = ctx.apps.apps.get(run.appId)
  const api = `${ctx.urls.api}/repos/${repo.owner}/${repo.name}`
  const appOwner = app ? (world(ctx).user(app.owner) ?? world(ctx).org(app.owner)) : undefined
  return {
    id: run.id,
    head_sha: run.headSha,
    node_id: nodeId('CheckRun', run.id),
    external_id: run.externalId,
    url: `${api}/check-runs/${run.id}`,
    html_url: `${ctx.urls.web}/${repo.owner}/${repo.name}/runs/${run.id}`,
    details_url: run.detailsUrl,
    status: run.status,
    conclusion: run.conclusion,
    started_at: run.startedAt,
    completed_at: run.completedAt,
    output: {
      title: run.output.title,
      summary: run.output.summary,
      text: run.output.text,
      annotations_count: 0,
      annotations_url: `${api}/check-runs/${run.id}/annotations`,
    },
    name: run.name,
    check_suite: { id: run.id },
    app: app
      ? {
          id: app.id,
          slug: app.slug,
          node_id: nodeId('Integration', app.id),
          client_id: app.clientId,
          owner: appOwner ? simpleUser(appOwner, ctx.urls) : null,
          name: app.name,
          description: null,
          external_url: `${ctx.urls.web}/apps/${app.slug}`,
          html_url: `${ctx.urls.web}/apps/${app.slug}`,
          created_at: app.createdAt,
          updated_at: app.createdAt,
          permissions: app.permissions,
          events: app.events,
        }
      : null,
    pull_requests: repo.pulls
      .filter((p) => p.state === 'open' && p.head.sha === run.headSha)
      .map((p) => ({
        id: p.id,
        number: p.number,
        url: `${api}/pulls/${p.number}`,
        head: { ref: p.head.ref, sha: p.head.sha, repo: { id: repo.id, url: api, name: repo.name } },
        base: { ref: p.base.ref, sha: p.base.sha, repo: { id: repo.id, url: api, name: repo.name } },
      })),
  }
}

const world = (ctx: SimContext) => ctx.world

interface PushedCommit {
  sha: string
  tree: string
  message: string
  timestamp: string
  author: { name: string; email: string }
  committer: { name: string; email: string }
  added: string[]
  removed: string[]
  modified: string[]
}

/** Commits in `before..after` (oldest first, at most 20 like GitHub's payload) with their file lists. */
async function pushedCommits(repo: RepoRecord, before: string, after: string): Promise<PushedCommit[]> {
  const run = (args: string[]) => git(args, { cwd: repo.git.dir, home: repo.git.home })
  const range = before === ZERO ? [after, '-n', '20'] : [`${before}..${after}`, '-n', '20']
  const list = (await run(['rev-list', '--reverse', ...range])).stdout
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
  const out: PushedCommit[] = []
  for (const sha of list) {
    const c = await repo.git.readCommit(sha)
    const files = (await run(['diff-tree', '--no-commit-id', '--name-status', '-r', '--root', sha])).stdout
      .toString('utf8')
      .split('\n')
      .filter(Boolean)
    const pick = (k: string) => files.filter((l) => l.startsWith(k)).map((l) => l.slice(l.indexOf('\t') + 1))
    out.push({
      sha,
      tree: c.tree,
      message: c.message.replace(/\n$/, ''),
      timestamp: c.committer.date,
      author: { name: c.author.name, email: c.author.email },
      committer: { name: c.committer.name, email: c.committer.email },
      added: pick('A'),
      removed: pick('D'),
      modified: pick('M'),
    })
  }
  return out
}
