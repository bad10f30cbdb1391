import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { type Config, loggerOptions } from '@portico/core'
import type { FastifyServerOptions } from 'fastify'

/** A client-chosen request id must look like one: bounded, no spaces, quotes or control bytes. */
const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/

/**
 * The request id generator: a random UUID, or the `x-request-id` a trusted proxy sent (only when
 * `TRUST_PROXY` is set, and only an id of at most 128 safe characters). A client reaching the API
 * directly cannot choose the id its requests are logged under.
 */
export function requestIdGenerator(config: Pick<Config, 'trustProxy'>) {
  const trust = config.trustProxy
  const trusted = trust !== false && trust !== 0 && !(Array.isArray(trust) && trust.length === 0)
  return (req: IncomingMessage): string => {
    const given = req.headers['x-request-id']
    if (trusted && typeof given === 'string' && REQUEST_ID.test(given)) return given
    return randomUUID()
  }
}

/** Fastify's own options, shared by the server and the tests' `build` helper. */
export function serverOptions(
  config: Config,
  logger: FastifyServerOptions['logger'] = loggerOptions(config.LOG_LEVEL),
) {
  return {
    logger,
    // Fastify accepts a hop count at runtime; its types only list the other forms.
    trustProxy: config.trustProxy as boolean | string[],
    // Ids come from genReqId alone, which decides whether the client's header is trusted.
    requestIdHeader: false as const,
    genReqId: requestIdGenerator(config),
    bodyLimit: 1024 * 1024,
    // Start-up registers many plugins; a loaded machine (CI running two suites) needs more than 10 s.
    pluginTimeout: 60_000,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array' as const, allErrors: false } },
  } satisfies FastifyServerOptions
}
