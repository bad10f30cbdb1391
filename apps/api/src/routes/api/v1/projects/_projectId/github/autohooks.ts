import type { FastifyInstance } from 'fastify'
import { signedInOnly } from '../../../../../../plugins/app/auth.js'

/** Who may manage a project's repository connection: project owners, admins and QA automation. */
export const CONNECTION_ROLES = ['owner', 'admin', 'qa-automation'] as const

/**
 * Every route of `…/projects/{projectId}/github` needs one of {@link CONNECTION_ROLES} in that
 * project (sets `request.project`); loaded by @fastify/autoload for this folder only.
 */
export default async function connectionHooks(fastify: FastifyInstance) {
  signedInOnly(fastify)
  fastify.addHook('preHandler', fastify.requireProjectRole(...CONNECTION_ROLES))
}
