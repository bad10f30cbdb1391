import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { errorResponses } from '../../../../schemas/common.js'
import { PodParams, PodView } from '../../../../schemas/pods.js'

/**
 * `GET /api/v1/pods/{customer}/{env}`: the richer pod view (document, path, blob sha, ETag).
 * The legacy `/api/pod(s)/…` keeps answering the document alone.
 */
export default async function podsV1Routes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  fastify.get(
    '/:customer/:env',
    {
      // Anonymous callers without the service fallback: 401 before anything is validated.
      config: { auth: 'reader' },
      schema: {
        tags: ['pods'],
        summary: 'One pod with where its spec lives and which version was read',
        description:
          'The parsed spec document as GET /api/pod/{customer}/{env} answers it, plus its `path` in the specs repository, the blob `sha` and the `etag` read. Signed-in users; anonymous callers get 401 unless the server lets anonymous reads use its service token (ALLOW_SERVICE_TOKEN_FALLBACK).',
        params: PodParams,
        response: { 200: PodView, ...errorResponses(400, 401, 403, 404, 422, 503) },
      },
    },
    async (request) => {
      const pod = await fastify.readPod(request, request.params.customer, request.params.env)
      return {
        customer: pod.customer,
        env: pod.env,
        path: pod.path,
        sha: pod.sha,
        etag: pod.etag,
        document: pod.spec,
      }
    },
  )
}
