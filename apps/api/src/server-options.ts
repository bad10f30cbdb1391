import { type Config, loggerOptions } from '@portico/core'
import type { FastifyServerOptions } from 'fastify'

/** Fastify's own options, shared by the server and the tests' `build` helper. */
export function serverOptions(
  config: Config,
  logger: FastifyServerOptions['logger'] = loggerOptions(config.LOG_LEVEL),
) {
  return {
    logger,
    // Fastify accepts a hop count at runtime; its types only list the other forms.
    trustProxy: config.trustProxy as boolean | string[],
    requestIdHeader: 'x-request-id',
    bodyLimit: 1024 * 1024,
    // Start-up registers many plugins; a loaded machine (CI running two suites) needs more than 10 s.
    pluginTimeout: 60_000,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array' as const, allErrors: false } },
  } satisfies FastifyServerOptions
}
