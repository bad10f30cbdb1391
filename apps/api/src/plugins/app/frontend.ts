import { existsSync, statSync } from 'node:fs'
import path from 'node:path'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/** Path prefixes that belong to the API: never served from STATIC_DIR, a JSON 404 when unknown. */
export const API_PREFIXES = ['/api', '/auth', '/admin', '/health', '/docs', '/metrics', '/webhooks'] as const

/** Whether a URL path (no query) is the API's. */
export function isApiPath(urlPath: string): boolean {
  return API_PREFIXES.some((p) => urlPath === p || urlPath.startsWith(`${p}/`))
}

/**
 * A build tool's content-hashed asset (Vite: `assets/index-BxYz12Ab.js`): in an `assets/`
 * folder, with a hash of 8+ characters before the extension. Its name changes whenever its
 * content does, so it may be cached for a year.
 */
export function isHashedAsset(filePath: string): boolean {
  const parts = filePath.split(/[\\/]/)
  return parts.includes('assets') && /[-.][A-Za-z0-9_]{8,}\.[A-Za-z0-9]+$/.test(parts.at(-1) ?? '')
}

const IMMUTABLE = 'public, max-age=31536000, immutable'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * History-mode fallback of the frontend build: answers `index.html` (no-cache) and returns
     * true for a GET/HEAD outside the API prefixes that accepts text/html, when STATIC_DIR is
     * set; otherwise returns false and leaves the reply alone.
     */
    spaFallback(request: FastifyRequest, reply: FastifyReply): boolean
  }
}

/**
 * Serves a frontend build from STATIC_DIR with `@fastify/static`: files outside the API
 * prefixes, `index.html` for history-mode routes, hashed assets cached for a year, `index.html`
 * revalidated on every load, no directory listings; `@fastify/send` refuses traversal and
 * dotfiles. Without STATIC_DIR nothing is registered (GET / is the landing page).
 */
export default fp(
  async (fastify: FastifyInstance) => {
    const dir = fastify.config.STATIC_DIR
    if (!dir) {
      fastify.decorate('spaFallback', () => false)
      return
    }
    const root = path.resolve(dir)
    if (!existsSync(path.join(root, 'index.html')) || !statSync(root).isDirectory()) {
      throw new Error(`STATIC_DIR must be a folder with an index.html: ${root}`)
    }
    await fastify.register(fastifyStatic, {
      root,
      prefix: '/',
      wildcard: true,
      index: ['index.html'],
      list: false,
      dotfiles: 'ignore',
      // Cache-Control is ours: a year for hashed assets, revalidation for everything else.
      cacheControl: false,
      allowedPath: (pathName) => !isApiPath(pathName),
      setHeaders: (res, filePath) => {
        void res.header(
          'cache-control',
          isHashedAsset(path.relative(root, filePath)) ? IMMUTABLE : 'no-cache',
        )
      },
    })
    fastify.decorate('spaFallback', (request: FastifyRequest, reply: FastifyReply) => {
      if (request.method !== 'GET' && request.method !== 'HEAD') return false
      if (isApiPath(request.url.split('?')[0] ?? '/')) return false
      if (!String(request.headers.accept ?? '').includes('text/html')) return false
      void reply.header('cache-control', 'no-cache').sendFile('index.html', root, { cacheControl: false })
      return true
    })
  },
  { name: 'frontend', dependencies: ['errors'] },
)
