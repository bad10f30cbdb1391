import path from 'node:path'
import { fileURLToPath } from 'node:url'
import AutoLoad from '@fastify/autoload'
import { type Config, loadConfig } from '@portico/core'
import type { FastifyInstance, FastifyPluginOptions } from 'fastify'
import fp from 'fastify-plugin'
import tracing from './tracing.js'

const dirname = path.dirname(fileURLToPath(import.meta.url))

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

export interface AppOptions extends FastifyPluginOptions {
  /** Validated configuration; loaded from the environment when absent. */
  config?: Config
}

/**
 * The Portico API as a Fastify plugin: third-party integrations first (`plugins/external`),
 * then Portico's own cross-cutting plugins (`plugins/app`), then the routes.
 */
async function app(fastify: FastifyInstance, opts: AppOptions): Promise<void> {
  fastify.decorate('config', opts.config ?? loadConfig())
  for (const deprecation of fastify.config.deprecations) fastify.log.warn(deprecation)
  await fastify.register(tracing)

  await fastify.register(AutoLoad, {
    dir: path.join(dirname, 'plugins/external'),
    options: { ...opts },
  })
  await fastify.register(AutoLoad, {
    dir: path.join(dirname, 'plugins/app'),
    options: { ...opts },
  })
  await fastify.register(AutoLoad, {
    dir: path.join(dirname, 'routes'),
    autoHooks: true,
    cascadeHooks: true,
    // `_projectId` folders become `:projectId` route parameters.
    routeParams: true,
    options: { ...opts },
  })
}

export default fp(app, { name: 'portico-app' })
