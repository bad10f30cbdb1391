import {
  AppError,
  classifyToken,
  type GithubActor,
  GithubApp,
  githubAppNotConfigured,
  githubErrorStatus,
  githubErrorToAppError,
  mapLimit,
  type Octokit,
  ServiceActor,
} from '@portico/core'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { LRUCache } from 'lru-cache'

/** One repository of an installation, as the API shows it. */
export interface InstallationRepositoryView {
  id: number
  full_name: string
  private: boolean
  default_branch: string | null
}

/** One installation of Portico's App, with the repositories the signed-in user may use. */
export interface InstallationView {
  id: number
  account: { login: string; type: string }
  repository_selection: 'all' | 'selected'
  repositories: InstallationRepositoryView[]
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Portico's GitHub App, or null when GITHUB_APP_* are unset. */
    githubApp: GithubApp | null
    /** The App, or 503 GITHUB_APP_NOT_CONFIGURED. */
    requireGithubApp(): GithubApp
    /** Who acts when no person does: the App's installation on GH_REPO's owner, else GH_TOKEN. */
    serviceActor: ServiceActor
    /**
     * The App's installations the signed-in user can reach, each with the repositories both the
     * user and the installation reach (see {@link listUserInstallations}).
     */
    userInstallations(request: FastifyRequest): Promise<InstallationView[]>
    /**
     * One repository of one installation, checked with the user's token (ids from a client are
     * never trusted): 400 INSTALLATION_NOT_ACCESSIBLE, 400 REPOSITORY_NOT_IN_INSTALLATION.
     */
    userInstallationRepository(
      request: FastifyRequest,
      installationId: number,
      repositoryId: number,
    ): Promise<InstallationRepositoryView & { account: string }>
    /** Whether `installationId` is an installation of the App the signed-in user can reach. */
    userCanReachInstallation(request: FastifyRequest, installationId: number): Promise<boolean>
  }
}

/** Pages read per listing (100 items each): bounds the work one request can cause. */
const MAX_PAGES = 10
/** Parallel "can the user read it?" checks. */
const READ_CHECK_CONCURRENCY = 8
/** How long a user's read access to a repository is remembered. */
const READ_CACHE = { max: 10_000, ttl: 60_000 }

export const installationNotAccessible = () =>
  new AppError(
    400,
    'INSTALLATION_NOT_ACCESSIBLE',
    'This GitHub App installation is not one you can reach. Pick one from the installations list.',
  )
export const repositoryNotInInstallation = () =>
  new AppError(
    400,
    'REPOSITORY_NOT_IN_INSTALLATION',
    'This repository is not among the installation’s repositories you can read. Add it to the installation on GitHub, or pick another.',
  )

interface RawInstallation {
  id: number
  app_id?: number
  account?: { login?: string; type?: string; slug?: string; name?: string | null } | null
  repository_selection?: string
  suspended_at?: string | null
}
interface RawRepository {
  id: number
  full_name: string
  private: boolean
  default_branch?: string
}

const toRepo = (r: RawRepository): InstallationRepositoryView => ({
  id: r.id,
  full_name: r.full_name,
  private: r.private,
  default_branch: r.default_branch ?? null,
})

const toInstallation = (
  i: RawInstallation,
  repositories: InstallationRepositoryView[],
): InstallationView => ({
  id: i.id,
  account: { login: i.account?.login ?? i.account?.slug ?? '', type: i.account?.type ?? 'Organization' },
  repository_selection: i.repository_selection === 'all' ? 'all' : 'selected',
  repositories,
})

/** Every item of a paginated GitHub listing, up to {@link MAX_PAGES} pages. */
async function listAll<T>(
  octokit: Octokit,
  route: string,
  params: Record<string, unknown> = {},
): Promise<T[]> {
  const out: T[] = []
  let pages = 0
  for await (const page of octokit.paginate.iterator(route, { ...params, per_page: 100 })) {
    out.push(...(page.data as T[]))
    if (++pages >= MAX_PAGES) break
  }
  return out
}

/**
 * The GitHub App (when configured), the service actor built on it, and what a signed-in user can
 * reach through the App. GitHub serves `GET /user/installations` only to the App's own user tokens
 * (`ghu_`, people signed in through the App's client): with such a token the user's listing is
 * asked for directly; with any other token (an OAuth App's `gho_`) the App's installations are
 * listed with the App's credentials and each repository is kept only if the user's token can read
 * it (remembered for a minute).
 * https://docs.github.com/en/rest/apps/installations#list-app-installations-accessible-to-the-user-access-token
 */
export default fp(
  async (fastify: FastifyInstance) => {
    const { config } = fastify
    const app = config.githubApp
      ? new GithubApp(config.githubApp, { apiUrl: config.GITHUB_API_URL, githubUrl: config.GITHUB_URL })
      : null
    const requireApp = () => {
      if (!app) throw githubAppNotConfigured()
      return app
    }
    fastify.decorate('githubApp', app)
    fastify.decorate('requireGithubApp', requireApp)
    fastify.decorate('serviceActor', new ServiceActor(config, app))

    const readable = new LRUCache<string, boolean>(READ_CACHE)
    /**
     * Whether the repository is the user's to connect (`GET /repositories/{id}` with their token):
     * a private one they can read; a public one (which everyone can read, so reading proves
     * nothing) only with write access or more (`permissions.push`, `maintain` or `admin`).
     */
    async function userCanRead(actor: GithubActor, repoId: number): Promise<boolean> {
      const key = `${actor.userId}:${repoId}`
      const hit = readable.get(key)
      if (hit !== undefined) return hit
      let ok: boolean
      try {
        const { data } = await actor.octokit.request('GET /repositories/{id}', { id: repoId })
        const repo = data as {
          private?: boolean
          permissions?: { push?: boolean; maintain?: boolean; admin?: boolean }
        }
        const p = repo.permissions
        ok = repo.private === true || p?.push === true || p?.maintain === true || p?.admin === true
      } catch (err) {
        const status = githubErrorStatus(err)
        if (status !== 404 && status !== 403) throw err
        ok = false
      }
      readable.set(key, ok)
      return ok
    }

    const viaUserToken = (actor: GithubActor) => classifyToken(actor.token) === 'user-to-server'

    /** The repositories of an installation as the App sees them (an installation token). */
    async function installationRepos(installationId: number): Promise<RawRepository[]> {
      const { octokit } = await requireApp().installationOctokit(installationId)
      return listAll<RawRepository>(octokit, 'GET /installation/repositories')
    }

    /** The App's own record of an installation, or null (not ours, or gone). */
    async function appInstallation(installationId: number): Promise<RawInstallation | null> {
      const octokit = await requireApp().appOctokit()
      try {
        const { data } = await octokit.request('GET /app/installations/{installation_id}', {
          installation_id: installationId,
        })
        return data as RawInstallation
      } catch (err) {
        if (githubErrorStatus(err) === 404) return null
        throw err
      }
    }

    async function listUserInstallations(request: FastifyRequest): Promise<InstallationView[]> {
      const gh = requireApp()
      const actor = await request.github({ requireUser: true })
      if (viaUserToken(actor)) {
        const installations = (
          await listAll<RawInstallation>(actor.octokit, 'GET /user/installations')
        ).filter((i) => i.app_id === undefined || i.app_id === gh.appId)
        return mapLimit(installations, READ_CHECK_CONCURRENCY, async (i) =>
          toInstallation(
            i,
            (
              await listAll<RawRepository>(
                actor.octokit,
                'GET /user/installations/{installation_id}/repositories',
                {
                  installation_id: i.id,
                },
              )
            ).map(toRepo),
          ),
        )
      }
      const installations = (
        await listAll<RawInstallation>(await gh.appOctokit(), 'GET /app/installations')
      ).filter((i) => !i.suspended_at)
      const views: InstallationView[] = []
      for (const installation of installations) {
        const repos = await installationRepos(installation.id)
        const checks = await mapLimit(repos, READ_CHECK_CONCURRENCY, (r) => userCanRead(actor, r.id))
        const visible = repos.filter((_, i) => checks[i]).map(toRepo)
        // An installation none of whose repositories the user can read is not theirs to see.
        if (visible.length > 0) views.push(toInstallation(installation, visible))
      }
      return views
    }

    async function userInstallationRepository(
      request: FastifyRequest,
      installationId: number,
      repositoryId: number,
    ): Promise<InstallationRepositoryView & { account: string }> {
      requireApp()
      const actor = await request.github({ requireUser: true })
      let repos: RawRepository[]
      let account: string
      if (viaUserToken(actor)) {
        try {
          repos = await listAll<RawRepository>(
            actor.octokit,
            'GET /user/installations/{installation_id}/repositories',
            { installation_id: installationId },
          )
        } catch (err) {
          const status = githubErrorStatus(err)
          if (status === 404 || status === 403) throw installationNotAccessible()
          throw err
        }
        // Only installations of Portico's App (a user token may reach other Apps' too).
        const installation = await appInstallation(installationId)
        if (!installation || installation.suspended_at) throw installationNotAccessible()
        account = installation.account?.login ?? repos[0]?.full_name.split('/')[0] ?? ''
      } else {
        const installation = await appInstallation(installationId)
        if (!installation || installation.suspended_at) throw installationNotAccessible()
        repos = await installationRepos(installationId)
        account = installation.account?.login ?? ''
        const wanted = repos.find((r) => r.id === repositoryId)
        if (wanted && !(await userCanRead(actor, wanted.id))) {
          // The user cannot read it: as far as they are concerned the installation is not theirs.
          throw installationNotAccessible()
        }
      }
      const repo = repos.find((r) => r.id === repositoryId)
      if (!repo) throw repositoryNotInInstallation()
      return { ...toRepo(repo), account }
    }

    async function userCanReachInstallation(
      request: FastifyRequest,
      installationId: number,
    ): Promise<boolean> {
      requireApp()
      const actor = await request.github({ requireUser: true })
      if (viaUserToken(actor)) {
        const installations = await listAll<RawInstallation>(actor.octokit, 'GET /user/installations')
        return installations.some(
          (i) => i.id === installationId && (i.app_id === undefined || i.app_id === requireApp().appId),
        )
      }
      const installation = await appInstallation(installationId)
      if (!installation) return false
      const repos = await installationRepos(installationId)
      for (const repo of repos.slice(0, 100)) if (await userCanRead(actor, repo.id)) return true
      return false
    }

    const mapped =
      <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
      async (...args: A): Promise<R> => {
        try {
          return await fn(...args)
        } catch (err) {
          throw githubErrorToAppError(err)
        }
      }
    fastify.decorate('userInstallations', mapped(listUserInstallations))
    fastify.decorate('userInstallationRepository', mapped(userInstallationRepository))
    fastify.decorate('userCanReachInstallation', mapped(userCanReachInstallation))
  },
  { name: 'github-app' },
)
