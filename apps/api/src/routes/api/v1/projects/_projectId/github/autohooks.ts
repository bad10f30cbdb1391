import type { FastifyInstance } from 'fastify'
import { signedInOnly } from '../../../../../../plugins/app/auth.js'
import { jsonBodyParser } from '../../../../../../plugins/app/json-body.js'

/** Who may manage a project's repository connection: project owners, admins and QA automation. */
export const CONNECTION_ROLES = ['owner', 'admin', 'qa-automation'] as const

/**
 * Every route of `…/projects/{projectId}/github` needs one of {@link CONNECTION_ROLES} in that
 * project (sets `request.project`); loaded by @fastify/autoload for this folder only.
 */
export default async function connectionHooks(fastify: FastifyInstance) {
  signedInOnly(fastify)
  fastify.addHook('preHandler', fastify.requireProjectRole(...CONNECTION_ROLES))
  // `fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' } })` sends no
  // body: for `…/refresh` that means "no options", not 400. Non-empty bodies parse as usual.
  fastify.removeContentTypeParser('application/json')
  fastify.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    if ((body as Buffer).length === 0) done(null, undefined)
    else jsonBodyParser(request, body as Buffer, done)
  })
}
