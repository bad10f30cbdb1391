import { AppError, redactFieldName } from '@portico/core'
import type { TSchema } from '@sinclair/typebox'
import { errorCodes, type FastifyInstance, type FastifyRequest, type RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { unionBranches } from '../../schemas/union-branches.js'

/**
 * The top-level fields of each branch of a closed body schema (`additionalProperties: false`, or
 * a union of such objects and `null`), or null when the schema is open and any field goes.
 */
function closedBranchesOf(schema: TSchema): ReadonlySet<string>[] | null {
  // A `null` branch (an optional body) takes no field.
  const branches = unionBranches(schema).filter((b) => b.schema.type !== 'null')
  if (
    branches.length === 0 ||
    !branches.every((b) => b.schema.type === 'object' && b.schema.additionalProperties === false)
  )
    return null
  return branches.map((b) => b.fields)
}

/**
 * Two fields of `keys` that no single branch takes together (`repo_url` of a PAT connection and
 * `installation_id` of an App one), or undefined when some branch takes them all.
 */
function mixedFields(keys: string[], branches: ReadonlySet<string>[]): [string, string] | undefined {
  if (branches.length < 2 || branches.some((b) => keys.every((k) => b.has(k)))) return undefined
  const first = keys[0] as string
  // The branch of the first field that takes most of the others; the first one it does not take.
  const home = branches
    .filter((b) => b.has(first))
    .reduce<ReadonlySet<string> | undefined>(
      (best, b) =>
        best === undefined || keys.filter((k) => b.has(k)).length > keys.filter((k) => best.has(k)).length
          ? b
          : best,
      undefined,
    )
  const other = keys.find((k) => !home?.has(k))
  return other === undefined ? undefined : [first, other]
}

/**
 * A preValidation hook refusing a body field the route's schema does not take, by name, before
 * the schema's other checks. Ajv checks `required` before `additionalProperties`, so
 * `{"repo_url": …, "token": "ghp_…"}` was told "body.pat is required", never that `token` is not
 * a field. The refusal is the schema's own `additionalProperties` error, so the error handler
 * words it as every other one ("body has a field this route does not take: "token"", 400
 * VALIDATION_ERROR). Only the key is named, never its value; a key that is itself a token is
 * redacted ({@link redactFieldName}: a legacy 40-hex one too, whatever surrounds it). Known
 * fields of two branches of a union sent together are named as such.
 */
function refuseUnknownFields(branches: ReadonlySet<string>[]) {
  const known = new Set(branches.flatMap((branch) => [...branch]))
  return async function refuseUnknownFields(request: FastifyRequest) {
    const body = request.body
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return
    const keys = Object.keys(body)
    const key = keys.find((k) => !known.has(k))
    if (key === undefined) {
      // Every field is known, but to different branches of a union: Ajv would name one of them
      // as a field the route "does not take", which it does, in the other kind of request.
      const mixed = mixedFields(keys, branches)
      if (mixed)
        throw new AppError(
          400,
          'VALIDATION_ERROR',
          `body cannot have both "${mixed[0]}" and "${mixed[1]}": they belong to different kinds of request`,
        )
      return
    }
    throw Object.assign(new errorCodes.FST_ERR_VALIDATION('body must NOT have additional properties'), {
      validationContext: 'body',
      validation: [
        {
          keyword: 'additionalProperties',
          instancePath: '',
          schemaPath: '#/additionalProperties',
          params: { additionalProperty: redactFieldName(key) },
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
      const branches = closedBranchesOf(body)
      if (!branches) return
      const own = route.preValidation
      const hook = refuseUnknownFields(branches)
      route.preValidation = own ? [hook, ...(Array.isArray(own) ? own : [own])] : [hook]
    })
  },
  { name: 'unknown-fields' },
)
