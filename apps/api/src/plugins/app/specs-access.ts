import { randomUUID } from 'node:crypto'
import { AppError, type GithubActor, githubErrorToAppError, subscribeChannel } from '@portico/core'
import { PodCatalog, type PodSpec, type SpecsRepoInfo, validatePodRef } from '@portico/pods'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The one catalog of the specs repository (`GH_REPO`), shared by the pod routes and
     * `/health` so both revalidate the same ETag cache; null when GH_REPO is unset.
     */
    podCatalog: PodCatalog | null
    /**
     * `POST /api/refresh`: clears the catalog's cached answers, shared ones included, and tells
     * every other API process (Redis channel `{REDIS_PREFIX}:pods-refresh`) to forget its own
     * copies and its callers' confirmations. Nothing to do without GH_REPO.
     */
    refreshPods(): Promise<void>
    /**
     * Who may read the specs repository: resolves `request.github()` (the user; GH_TOKEN only
     * for reads when the fallback is allowed) and applies the ACCESS_ORG gate when ACCESS_ORG
     * owns GH_REPO. 503 PODS_NOT_CONFIGURED without GH_REPO; 401 NOT_AUTHENTICATED; 403
     * ORG_MEMBERSHIP_REQUIRED. GitHub failures are mapped to Portico's GitHub error codes.
     * With `repoVisible`, the caller's token must also see the repository (one conditional
     * `GET /repos/{owner}/{repo}`, revalidated at most every PODS_REVALIDATE_SECONDS), else 404
     * SPECS_REPO_NOT_FOUND: for what Portico itself keeps about the repository (deployments),
     * which GitHub cannot refuse for it.
     */
    specsAccess(
      request: FastifyRequest,
      options?: { repoVisible?: boolean },
    ): Promise<{ actor: GithubActor; catalog: PodCatalog }>
    /**
     * One pod's spec as the caller may read it: the names are validated first (400
     * VALIDATION_ERROR), then {@link specsAccess}; 404 POD_NOT_FOUND; 422 for a malformed spec.
     */
    readPod(request: FastifyRequest, customer: string, env: string): Promise<PodSpec>
  }
}

/** Runs GitHub work, mapping its failures (unreachable, rate limited, 401…) to clear errors. */
export async function withGithubErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    throw githubErrorToAppError(err)
  }
}

/** Authorization for the specs repository (pods and deployments), in one place. */
export default fp(
  async (fastify: FastifyInstance) => {
    const { config } = fastify
    const [owner, repo] = (config.GH_REPO ?? '').split('/')
    // Pub/sub ignores the database number (https://redis.io/docs/latest/develop/interact/pubsub/):
    // name it, or deployments sharing a Redis under one prefix would hear each other's refreshes.
    const refreshChannel = `${config.REDIS_PREFIX}:db${fastify.redis.options.db ?? 0}:pods-refresh`
    // Each refresh names the process that sent it: that one has forgotten already, and forgetting
    // again when its own message comes back would drop the answers read since (its next listing
    // would be cold again, and counted).
    const processId = randomUUID()
    // A refresh in another process reaches this one through Redis: without it, its callers kept
    // being served their confirmed listing for up to PODS_REVALIDATE_SECONDS after the refresh.
    // Created before the catalog, which trusts confirmations only while it is live.
    const refreshes =
      owner && repo
        ? subscribeChannel({
            redisUrl: config.REDIS_URL,
            connectionName: 'portico-pods-refresh',
            channel: refreshChannel,
            what: 'pods refresh channel',
            log: fastify.log,
            // Refreshes published while this process was not subscribed (before its first
            // connection, or during an outage) are lost: forget once nothing more can be missed.
            onSubscribed: () => catalog?.forget(),
            onMessage: (sender) => {
              if (sender?.toString() !== processId) catalog?.forget()
            },
          })
        : null
    const catalog =
      owner && repo
        ? new PodCatalog(
            { owner, repo, branch: config.WORKFLOW_BRANCH, specsPath: config.SPECS_PATH },
            // Shared by every API process; each caller's token revalidates it (at most every PODS_REVALIDATE_SECONDS).
            {
              shared: { redis: fastify.redis, prefix: config.REDIS_PREFIX },
              revalidateAfterMs: config.PODS_REVALIDATE_SECONDS * 1000,
              // A refresh elsewhere could go unheard while the channel is down: revalidate each read.
              confirmationsTrusted: () => refreshes?.live === true,
            },
          )
        : null
    const gated = Boolean(config.ACCESS_ORG && owner?.toLowerCase() === config.ACCESS_ORG.toLowerCase())
    fastify.decorate('podCatalog', catalog)
    fastify.decorate('refreshPods', async () => {
      if (!catalog) return
      await catalog.clear()
      // A refresh Redis will not pass on (no pub/sub permission, a failover) is still a refresh
      // here; the other processes' channels are down too, so they do not trust confirmations.
      await fastify.redis.publish(refreshChannel, processId).catch((err: unknown) => {
        fastify.log.warn(
          { err },
          'pods refresh channel: could not publish; other processes revalidate on their own',
        )
      })
    })
    if (catalog && refreshes) {
      // With Redis up, the API serves nothing before it is subscribed; with Redis away it starts
      // anyway (as the main connection lets it) and subscribes when Redis is back.
      if (fastify.redis.status === 'ready') await refreshes.whenSubscribed(5000)
      fastify.addHook('onClose', async () => refreshes.close())
    }

    async function access(
      request: FastifyRequest,
      options: { repoVisible?: boolean } = {},
    ): Promise<{ actor: GithubActor; catalog: PodCatalog }> {
      if (!catalog) {
        throw new AppError(
          503,
          'PODS_NOT_CONFIGURED',
          'Pods are not configured: set GH_REPO to the specs repository.',
          { expose: true },
        )
      }
      const actor = await request.github()
      if (gated) {
        try {
          // Active members pass whatever the visibility, so it is only read for everyone else.
          await fastify.assertOrgAccess(actor, { owner: catalog.location.owner, private: true })
        } catch (err) {
          if ((err as AppError).code !== 'ORG_MEMBERSHIP_REQUIRED') throw err
          let info: SpecsRepoInfo
          try {
            info = await catalog.repoInfo(actor.octokit, actor.token)
          } catch {
            throw err // invisible to the caller: the org rule is the answer, not a 404
          }
          await fastify.assertOrgAccess(actor, info) // a public repository is open to all
        }
      }
      if (options.repoVisible) await catalog.repoInfo(actor.octokit, actor.token)
      return { actor, catalog }
    }
    fastify.decorate('specsAccess', (request: FastifyRequest, options?: { repoVisible?: boolean }) =>
      withGithubErrors(() => access(request, options)),
    )
    fastify.decorate('readPod', async (request: FastifyRequest, customer: string, env: string) => {
      const pod = validatePodRef(customer, env)
      return withGithubErrors(async () => {
        const { actor, catalog } = await access(request)
        return catalog.getSpec(actor.octokit, pod)
      })
    })
  },
  { name: 'specs-access', dependencies: ['auth', 'redis'] },
)
