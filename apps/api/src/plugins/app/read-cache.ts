import { generationCache, observeCache } from '@portico/core'
import { type ConnectionView, HEARTBEAT_MS, listenForChanges, type ProjectAccess } from '@portico/db'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { LRUCache } from 'lru-cache'
import { READ_METHODS } from './auth.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Project access and connection status, kept in memory while Postgres reports changes. */
    readCache: ReadCache
  }
}

/** Counters for tests and operators: reads answered from memory, reads that went to Postgres. */
export interface ReadCacheStats {
  hits: number
  misses: number
  /** Reads that went to Postgres because the change listener was not live. */
  bypasses: number
}

/**
 * Reads served from this process's memory for up to `API_READ_CACHE_MS`, each dropped as soon as
 * Postgres reports a change to its rows (LISTEN/NOTIFY, migration 0010), and not used at all while
 * that notice cannot arrive (the listening connection is down): a reader sees a committed change
 * within the notice's delivery time (milliseconds; measured up to ~50 ms on a loaded 2-core
 * machine), whichever process or job made it.
 * Values are shared between requests: callers must not mutate them.
 */
export interface ReadCache {
  /** `load()` (findProjectAccess) unless a fresh answer for this project and user is in memory. */
  projectAccess(
    projectId: string,
    userId: string,
    load: () => Promise<ProjectAccess | undefined>,
  ): Promise<ProjectAccess | undefined>
  /** `load()` (the latest connection's view) unless a fresh one for this project is in memory. */
  connectionView(
    projectId: string,
    load: () => Promise<ConnectionView | undefined>,
  ): Promise<ConnectionView | undefined>
  /** Drops everything (this process's own writes call it before answering). */
  clear(): void
  readonly stats: ReadCacheStats
}

/** Entries per kind; a connection view is a few KB (its analysis summary is bounded). */
const MAX_ENTRIES = 10_000
const MAX_VIEW_BYTES = 64 * 1024 * 1024

/** `undefined` (absent, or no access) is worth remembering too: it is the 404 answer. */
type Slot<T> = { value: T | undefined }

/**
 * The API's read cache (see {@link ReadCache}). With `API_READ_CACHE_MS=0` it only passes reads
 * through and opens no listening connection.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    const { config } = fastify
    const stats: ReadCacheStats = { hits: 0, misses: 0, bypasses: 0 }
    const ttl = config.API_READ_CACHE_MS
    if (ttl === 0) {
      fastify.decorate('readCache', {
        projectAccess: (_p, _u, load) => load(),
        connectionView: (_p, load) => load(),
        clear: () => {},
        stats,
      } satisfies ReadCache)
      return
    }

    const access = new LRUCache<string, Slot<ProjectAccess>>({ max: MAX_ENTRIES, ttl })
    const views = new LRUCache<string, Slot<ConnectionView>>({
      max: MAX_ENTRIES,
      ttl,
      maxSize: MAX_VIEW_BYTES,
      sizeCalculation: (slot) => 2048 + (JSON.stringify(slot.value?.analysis_summary ?? null)?.length ?? 0),
    })
    // Every change notice calls reads.changed(): a read that started before a notice must not
    // store what it read (it may predate the change the notice is about). Concurrent misses of one
    // key share one query (a joined read counts as a hit).
    const reads = generationCache({
      stats,
      // The listener answered a check recently (confirmedAt is 0 while it does not listen): a
      // dark or lost connection serves nothing.
      live: () => Date.now() - listener.confirmedAt <= 2 * HEARTBEAT_MS,
    })
    const clear = () => {
      reads.changed()
      access.clear()
      views.clear()
    }

    // The cause last logged for this outage of the change listener (undefined: no outage).
    let outage: string | undefined
    const listener = listenForChanges(config.DATABASE_URL, {
      onChange(payload) {
        reads.changed()
        if (payload.startsWith('github_connections:'))
          views.delete(payload.slice('github_connections:'.length))
        else if (payload === 'access') access.clear()
        else clear()
      },
      onState(up) {
        // Whatever changed while nobody listened is unknown: start empty either way.
        clear()
        if (!up) return
        if (outage !== undefined) fastify.log.info('read cache back on: the change listener reconnected')
        outage = undefined
      },
      onError(err) {
        // Once per outage and cause: the listener retries every 250 ms to 30 s while Postgres is
        // away, and a new cause (refused, then a password or `too many clients`) is worth a line.
        const cause = String((err as { code?: unknown }).code ?? (err as Error).message)
        if (outage === cause) return
        outage = cause
        fastify.log.warn({ err }, 'read cache off until the change listener reconnects')
      },
    })
    fastify.addHook('onClose', () => listener.close())

    const readerOf = <T>(cache: LRUCache<string, Slot<T>>) =>
      reads.reader<T | undefined>({
        get: (key) => cache.get(key),
        set: (key, value) => cache.set(key, { value }),
      })
    const readAccess = readerOf(access)
    const readView = readerOf(views)

    const stopObserving = observeCache('read', stats)
    fastify.addHook('onClose', async () => stopObserving())
    fastify.decorate('readCache', {
      projectAccess: (projectId, userId, load) => readAccess(`${projectId}:${userId}`, load),
      connectionView: (projectId, load) => readView(projectId, load),
      clear,
      stats,
    } satisfies ReadCache)

    // Read-your-writes in this process: a write's own notice may arrive after its answer, so a
    // signed-in write drops everything before it answers. Anonymous requests write nothing cached
    // (webhook deliveries' jobs are noticed like any other change), so they cannot empty it.
    fastify.addHook('onSend', async (request, reply) => {
      if (READ_METHODS.has(request.method) || !request.user) return
      // A refused write (4xx) changed nothing; a failed one (5xx) may have changed part.
      if (reply.statusCode < 400 || reply.statusCode >= 500) clear()
    })
  },
  { name: 'read-cache', dependencies: ['db'] },
)
