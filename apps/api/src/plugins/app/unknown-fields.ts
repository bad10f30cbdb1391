import { redactSecrets } from '@portico/core'
import type { TSchema } from '@sinclair/typebox'
import { errorCodes, type FastifyInstance, type FastifyRequest, type RouteOptions } from 'fastify'
import fp from 'fastify-plugin'

/**
 * The top-level fields a closed body schema takes (`additionalProperties: false`, or a union of
 * such objects and `null`), or null when the schema is open and any field goes.
 */
export function closedFieldsOf(schema: TSchema): ReadonlySet<string> | null {
  // A `null` branch (an optional body) takes no field.
  const branches = (Array.isArray(schema.anyOf) ? (schema.anyOf as TSchema[]) : [schema]).filter(
    (b) => b.type !== 'null',
  )
  if (
    branches.length === 0 ||
    !branches.every((b) => b.type === 'object' && b.additionalProperties === false)
  )
    return null
  return new Set(branches.flatMap((branch) => Object.keys((branch.properties as object | undefined) ?? {})))
}

/**
 * A preValidation hook refusing a body field the route's schema does not take, by name, before
 * the schema's other checks. Ajv checks `required` before `additionalProperties`, so
 * `{"repo_url": …, "token": "ghp_…"}` was told "body.pat is required", never that `token` is not
 * a field. The refusal is the schema's own `additionalProperties` error, so the error handler
 * words it as every other one ("body has a field this route does not take: "token"", 400
 * VALIDATION_ERROR). Only the key is named, never its value; a key that is itself a token is
 * redacted.
 */
function refuseUnknownFields(known: ReadonlySet<string>) {
  return async function refuseUnknownFields(request: FastifyRequest) {
    const body = request.body
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return
    const key = Object.keys(body).find((k) => !known.has(k))
    if (key === undefined) return
    throw Object.assign(new errorCodes.FST_ERR_VALIDATION('body must NOT have additional properties'), {
      validationContext: 'body',
      validation: [
        {
          keyword: 'additionalProperties',
          instancePath: '',
          schemaPath: '#/additionalProperties',
          params: { additionalProperty: redactSecrets(key) },
          message: 'must NOT have additional properties',
        },
      ],
    })
  }
}

/**
 * Every route with a closed body schema names an unknown field first (see
 * {@link refuseUnknownFields}). Routes that validate their body themselves (`attachValidation`,
 * as `POST /api/pod` does for the frontend's messages) are left alone.
 */
export default fp(
  async (fastify: FastifyInstance) => {
    fastify.addHook('onRoute', (route: RouteOptions) => {
      const body = route.schema?.body as TSchema | undefined
      if (!body || route.attachValidation) return
      const known = closedFieldsOf(body)
      if (!known) return
      const own = route.preValidation
      const hook = refuseUnknownFields(known)
      route.preValidation = own ? [hook, ...(Array.isArray(own) ? own : [own])] : [hook]
    })
  },
  { name: 'unknown-fields' },
)
