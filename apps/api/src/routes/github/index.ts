import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { AppError, verifyInstallState } from '@portico/core'
import type { FastifyInstance } from 'fastify'
import { errorResponses } from '../../schemas/common.js'
import { SetupQuery } from '../../schemas/connections.js'
import { Redirect } from '../../schemas/errors.js'
import { safeReturnTo } from '../auth/index.js'

const invalidSetupState = () =>
  new AppError(
    400,
    'INVALID_SETUP_STATE',
    'This installation link is invalid or has expired. Start again from the repository connection page.',
  )

/**
 * `GET /github/setup`: the GitHub App's Setup URL, where GitHub sends a person after installing
 * (`installation_id`, `setup_action`, and the `state` Portico put on the install link).
 * The query can be forged: the state must be Portico's own (signed, unexpired, for this signed-in
 * user) and the installation one the user can reach; then 302 to the page recorded in the state
 * (same-origin only), else 400 INVALID_SETUP_STATE.
 * https://docs.github.com/en/apps/creating-github-apps/registering-a-github-app/about-the-setup-url
 */
export default async function githubSetupRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  const { config } = fastify

  fastify.get(
    '/setup',
    {
      schema: {
        summary:
          'GitHub App setup URL: after an installation, 302 back to the page the install link came from',
        description:
          'Called by GitHub after someone installs the App from `app.install_url` (GET /api/v1/projects/{projectId}/github/installations). The `state` must be the one Portico signed for this signed-in user and unexpired, and the installation one the user can reach: otherwise 400 INVALID_SETUP_STATE. 503 GITHUB_APP_NOT_CONFIGURED when no GitHub App is configured.',
        querystring: SetupQuery,
        response: { 302: Redirect, ...errorResponses(400, 401, 502, 503) },
      },
    },
    async (request, reply) => {
      fastify.requireGithubApp()
      const q = request.query
      const state = q.state ? verifyInstallState(config.SESSION_SECRET, q.state) : null
      const user = request.user
      if (!state || !user || state.userId !== user.id) throw invalidSetupState()
      const returnTo = safeReturnTo(state.returnTo, config.PUBLIC_URL)
      if (!returnTo) throw invalidSetupState()
      // `request`: an organisation owner must approve the installation; nothing to check yet.
      if (q.setup_action !== 'request') {
        const id = Number(q.installation_id)
        if (!q.installation_id || !/^[1-9][0-9]{0,15}$/.test(q.installation_id) || !Number.isSafeInteger(id))
          throw invalidSetupState()
        if (!(await fastify.userCanReachInstallation(request, id))) throw invalidSetupState()
      }
      request.log.info(
        { installationId: q.installation_id, setupAction: q.setup_action },
        'GitHub App set up',
      )
      return reply.redirect(returnTo, 302)
    },
  )
}
