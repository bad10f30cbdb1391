import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { collectProcessMetrics, sendErrorBody } from '@portico/core'
import type { Db } from '@portico/db'
import type { Redis } from 'ioredis'
import { sql } from 'kysely'
import { register } from 'prom-client'

export interface HealthServerOptions {
  host: string
  /** 0 picks a free port (tests). */
  port: number
  /** `/live` fails once the event loop was blocked longer than this (WORKER_MAX_EVENT_LOOP_BLOCK_MS). */
  maxBlockMs: number
  redis: Redis
  db: Db
}

export interface HealthServer {
  url: string
  close(): Promise<void>
}

/** How often the event-loop watchdog ticks; a tick late by more than `maxBlockMs` marks a block. */
const TICK_MS = 250
const PATHS = new Set(['/live', '/ready', '/metrics'])

/**
 * The worker's health listener: `GET /live` (200, or 503 when the event loop was blocked longer
 * than `maxBlockMs` — the last late tick is remembered for a minute so a probe after the block
 * still sees it), `GET /ready` (Redis PING and Postgres `select 1`: 200 or 503 naming what
 * failed), `GET /metrics` (prom-client's default registry, text format: the worker's jobs,
 * clones and analyses, its GitHub calls, and process metrics). HEAD is answered as GET; another
 * method on one of these paths is 405 METHOD_NOT_ALLOWED with `Allow: GET, HEAD`, any other path
 * 404 NOT_FOUND, both in the API's error body.
 */
export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  // Process metrics (memory, CPU, event-loop lag, GC) beside the worker's own, as the API has.
  collectProcessMetrics()
  let expected = Date.now() + TICK_MS
  let blockedAt = 0
  let blockedMs = 0
  const watchdog = setInterval(() => {
    const late = Date.now() - expected
    if (late > opts.maxBlockMs) {
      blockedAt = Date.now()
      blockedMs = late
    }
    expected = Date.now() + TICK_MS
  }, TICK_MS)
  watchdog.unref()

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
  }
  const server = http.createServer((req, res) => {
    const path = req.url?.split('?')[0] ?? ''
    if (!PATHS.has(path)) {
      sendErrorBody(
        res,
        404,
        'NOT_FOUND',
        'The worker health listener serves /live, /ready and /metrics only.',
      )
      return
    }
    // A known path asked with another method: 405 naming the methods, as the API's METRICS_PORT
    // listener answers (HEAD is GET without the body, which Node leaves out itself).
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendErrorBody(res, 405, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}: use GET.`, {
        allow: 'GET, HEAD',
      })
      return
    }
    if (path === '/live') {
      const late = Date.now() - expected
      const blocked = late > opts.maxBlockMs || (blockedAt > 0 && Date.now() - blockedAt < 60_000)
      if (blocked) json(res, 503, { status: 'blocked', blocked_ms: Math.max(late, blockedMs) })
      else json(res, 200, { status: 'ok' })
      return
    }
    if (path === '/ready') {
      const check = async (p: () => Promise<unknown>) =>
        Promise.race([
          p().then(() => 'ok'),
          new Promise<string>((resolve) => setTimeout(() => resolve('unavailable'), 2000).unref()),
        ]).catch(() => 'unavailable')
      void Promise.all([check(() => opts.redis.ping()), check(() => sql`select 1`.execute(opts.db))]).then(
        ([redis, postgres]) => {
          const ok = redis === 'ok' && postgres === 'ok'
          json(res, ok ? 200 : 503, { status: ok ? 'ok' : 'unavailable', redis, postgres })
        },
      )
      return
    }
    // /metrics, the one path left.
    void register.metrics().then(
      (text) => res.writeHead(200, { 'content-type': register.contentType }).end(text),
      () => sendErrorBody(res, 500, 'INTERNAL_ERROR', 'The metrics could not be collected.'),
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, resolve)
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://${opts.host}:${port}`,
    close: async () => {
      clearInterval(watchdog)
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
