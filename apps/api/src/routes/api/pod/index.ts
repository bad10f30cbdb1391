import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { AppError } from '@portico/core'
import { validateDeployRequest, wafEnabledIn } from '@portico/pods'
import type { FastifyInstance } from 'fastify'
import { sendError } from '../../../plugins/app/errors.js'
import { parseJsonBody } from '../../../plugins/app/json-body.js'
import { withGithubErrors } from '../../../plugins/app/specs-access.js'
import { errorResponses } from '../../../schemas/common.js'
import {
  DeployAccepted,
  DeployBody,
  DeployCreated,
  DeployHeaders,
  PodDocument,
  PodParams,
} from '../../../schemas/pods.js'

const tags = ['pods']
const notJson = () => new AppError(400, 'INVALID_JSON', 'Request body must be JSON')

/**
 * `GET /api/pod/{customer}/{env}` (the parsed spec document itself, the frontend's read shape)
 * and `POST /api/pod` (create-or-update a pod through a pull request; signed-in users only).
 */
export default async function podRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()

  // The frontend's contract: anything that is not a JSON object is "Request body must be JSON".
  // A body that is JSON but refused for what it holds (too deep, prototype keys) keeps its code.
  fastify.removeContentTypeParser('application/json')
  fastify.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    try {
      done(null, parseJsonBody(body as Buffer, request.headers['content-type']))
    } catch (err) {
      const code = (err as AppError).code
      done(code === 'UNSAFE_JSON_KEY' || code === 'JSON_TOO_DEEP' ? (err as AppError) : notJson(), undefined)
    }
  })
  fastify.addContentTypeParser('*', { parseAs: 'string' }, (_req, _body, done) => done(null, undefined))

  fastify.get(
    '/:customer/:env',
    {
      // Anonymous callers without the service fallback: 401 before anything is validated.
      config: { auth: 'reader' },
      schema: {
        tags,
        summary: 'One pod: the parsed spec document itself (all of its keys)',
        params: PodParams,
        response: { 200: PodDocument, ...errorResponses(400, 401, 403, 404, 422, 503) },
      },
    },
    async (request) => (await fastify.readPod(request, request.params.customer, request.params.env)).spec,
  )

  const idempotency = fastify.idempotency('pod')
  fastify.post(
    '/',
    {
      // Before the body is read: an anonymous caller learns nothing but 401.
      config: { auth: 'user' },
      // The body schema documents the contract; validateDeployRequest checks it, with the
      // messages the frontend shows (a schema error would name the field differently).
      attachValidation: true,
      preHandler: idempotency.preHandler,
      onSend: idempotency.onSend,
      // A content-type Fastify cannot read (`json`, `a,b`) is refused before any parser runs.
      errorHandler: (error, request, reply) =>
        sendError(error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? notJson() : error, request, reply),
      schema: {
        tags,
        summary: 'Create or update a pod: a branch, the spec commit and a pull request',
        headers: DeployHeaders,
        body: DeployBody,
        response: {
          201: DeployCreated,
          202: DeployAccepted,
          ...errorResponses(400, 401, 403, 404, 409, 422, 429, 502, 503),
        },
      },
    },
    async (request, reply) => {
      if (request.validationError && request.validationError.validationContext !== 'body') {
        throw request.validationError
      }
      const input = validateDeployRequest(request.body)
      // Before any row: a caller who cannot see the repository learns nothing of the deploys in
      // flight (a 409 or 202 named them) and leaves nothing in the history (a second review).
      const { actor, catalog } = await fastify.specsAccess(request, { repoVisible: true })
      // Whether the pod exists is read fresh, not from the (cached) listing: "new" on a pod made
      // seconds ago is 409, not an update of it. "edit" needs the pod (404 POD_NOT_FOUND); a
      // waf_enabled left out keeps the pod's current setting (a new pod starts with the WAF off).
      // A spec.yml that exists but is empty or malformed is a pod, as the listing says: "new" is
      // 409, "edit" replaces an empty file, and there is no current setting to keep.
      const exists = () =>
        new AppError(409, 'POD_EXISTS', `Pod already exists: ${input.customer}/${input.env}`)
      const current =
        input.mode === 'new' || input.mode === 'edit' || input.waf_enabled === null
          ? await withGithubErrors(() => catalog.currentSpec(actor.octokit, input)).catch((err: unknown) => {
              const code = (err as { code?: unknown }).code
              if (input.mode !== 'edit' && code === 'POD_NOT_FOUND') return null
              if (input.mode === 'new' && (err as { statusCode?: unknown }).statusCode === 422) throw exists()
              throw err
            })
          : null
      if (input.mode === 'new' && current) throw exists()
      const waf_enabled = input.waf_enabled ?? (current?.spec ? wafEnabledIn(current.spec) : false)
      const answer = await fastify.requestDeploy(actor, { ...input, waf_enabled }, request.id)
      return reply.code(answer.statusCode).send(answer.body)
    },
  )
}
