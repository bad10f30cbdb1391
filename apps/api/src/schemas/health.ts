import { Type } from '@sinclair/typebox'

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()])

/** `GET /health`: the replaced system's fields first, then Portico's own. */
export const Health = Type.Object({
  status: Type.Union([Type.Literal('healthy'), Type.Literal('unhealthy')]),
  /** Why the check fails (503 only). */
  error: Type.Optional(Type.String()),
  github: Type.Union(
    ['connected', 'unconfigured', 'unauthorized', 'rate_limited', 'forbidden', 'unavailable'].map((s) =>
      Type.Literal(s),
    ),
  ),
  /** GH_REPO, `owner/repo`. */
  repo: Nullable(Type.String()),
  scopes: Nullable(Type.Object({ repo: Type.Boolean(), workflow: Type.Boolean() })),
  token_kind: Nullable(Type.String()),
  rate_limit: Nullable(
    Type.Object({
      remaining: Type.Integer(),
      limit: Type.Integer(),
      /** Unix seconds. */
      reset_at: Type.Integer(),
    }),
  ),
  repo_status: Type.Union(
    ['ok', 'unconfigured', 'not_found', 'unknown', 'unavailable'].map((s) => Type.Literal(s)),
  ),
  postgres: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  redis: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
})

const Dependency = Type.Union([Type.Literal('ok'), Type.Literal('unavailable')])

/** `GET /health/live`. */
export const Live = Type.Object({ status: Type.Literal('ok') })

/** `GET /health/ready` when Postgres and Redis answer. */
export const Ready = Type.Object({ status: Type.Literal('ready'), postgres: Dependency, redis: Dependency })

/** `GET /health/ready` when one does not: the error body plus each dependency's state. */
export const NotReady = Type.Object({
  statusCode: Type.Literal(503),
  code: Type.Literal('NOT_READY'),
  error: Type.String(),
  message: Type.String(),
  postgres: Dependency,
  redis: Dependency,
})
