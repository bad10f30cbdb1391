import type { TSchema } from '@sinclair/typebox'

/** One branch of a body schema and the names of its top-level fields. */
export interface UnionBranch {
  schema: TSchema
  fields: ReadonlySet<string>
}

/**
 * The branches of a body schema: those of a union (`anyOf`, as TypeBox's `Type.Union` writes
 * it), in order, so that `branches[i]` is the branch Ajv's errors name as `#/anyOf/i`; a schema
 * that is not a union is its own single branch. Each comes with the keys of its `properties`
 * (none for a `null` branch or an object without them). `CreateConnectionBody` gives
 * `[{schema: PatConnection, fields: {repo_url, pat}}, {schema: AppConnection, fields:
 * {installation_id, repository_id}}]`.
 */
export function unionBranches(schema: TSchema): UnionBranch[] {
  const branches = Array.isArray(schema.anyOf) ? (schema.anyOf as TSchema[]) : [schema]
  return branches.map((branch) => ({
    schema: branch,
    fields: new Set(Object.keys((branch.properties as object | undefined) ?? {})),
  }))
}
