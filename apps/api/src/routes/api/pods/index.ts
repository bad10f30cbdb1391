import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { withGithubErrors } from '../../../plugins/app/specs-access.js'
import { errorResponses } from '../../../schemas/common.js'
import { PodDocument, PodList, PodParams } from '../../../schemas/pods.js'

const tags = ['pods']
const readErrors = errorResponses(400, 401, 403, 404, 422, 503)

/** `GET /api/pods` and the alias `GET /api/pods/{customer}/{env}` of `GET /api/pod/{customer}/{env}`. */
export default async function podsRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()

  fastify.get(
    '/',
    {
      // Anonymous callers without the service fallback: 401 before anything is validated.
      config: { auth: 'reader' },
      schema: {
        tags,
        summary: 'Every pod of the specs repository, sorted (customer, then dev, stg, prd)',
        response: { 200: PodList, ...readErrors },
      },
    },
    async (request) => {
      const { actor, catalog } = await fastify.specsAccess(request)
      return withGithubErrors(() => catalog.list(actor.octokit))
    },
  )

  fastify.get(
    '/:customer/:env',
    {
      // Anonymous callers without the service fallback: 401 before anything is validated.
      config: { auth: 'reader' },
      schema: {
        tags,
        summary: 'One pod: the parsed spec document itself (alias of GET /api/pod/{customer}/{env})',
        params: PodParams,
        response: { 200: PodDocument, ...readErrors },
      },
    },
    async (request) => (await fastify.readPod(request, request.params.customer, request.params.env)).spec,
  )
}
