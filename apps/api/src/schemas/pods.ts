import { Type } from '@sinclair/typebox'
import { Text } from './text.js'

/** A timestamp: a Date in handlers, an ISO string on the wire. */
const Timestamp = Type.Unsafe<Date | string>({ type: 'string', format: 'date-time' })
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()])

// Path and query values are checked by @portico/pods (its messages are part of the API), so the
// schemas only bound their size.
export const PodParams = Type.Object({
  customer: Text({ maxLength: 200 }),
  env: Text({ maxLength: 200 }),
})

export const PodRef = Type.Object({ customer: Type.String(), env: Type.String() })
export const PodList = Type.Array(PodRef)

export const PodSpec = Type.Object({
  customer: Type.String(),
  env: Type.String(),
  spec: Type.Object({}, { additionalProperties: true }),
})

export const RefreshResult = Type.Object({ message: Type.String() })

export const DeployCreated = Type.Object({
  deployment_id: Type.String(),
  branch: Type.String(),
  pr_url: Type.String(),
  pr_number: Type.Integer(),
})

export const DeployAccepted = Type.Object({
  deployment_id: Type.String(),
  status: Type.String(),
  status_url: Type.String(),
})

export const DeploymentParams = Type.Object({ id: Text({ maxLength: 64 }) })

export const DeploymentQuery = Type.Object({
  customer: Type.Optional(Text({ maxLength: 200 })),
  env: Type.Optional(Text({ maxLength: 200 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
})

export const Deployment = Type.Object({
  id: Type.String(),
  customer: Type.String(),
  env: Type.String(),
  instance_name: Type.String(),
  waf_enabled: Type.Boolean(),
  mode: Type.Union([Type.Literal('new'), Type.Literal('edit'), Type.Null()]),
  status: Type.Union(['queued', 'running', 'succeeded', 'failed'].map((s) => Type.Literal(s))),
  branch: Nullable(Type.String()),
  pr_url: Nullable(Type.String()),
  pr_number: Type.Union([Type.Integer(), Type.Null()]),
  commit_message: Nullable(Type.String()),
  error: Type.Union([
    Type.Object({ code: Type.String(), status: Type.Integer(), message: Type.String() }),
    Type.Null(),
  ]),
  requested_by: Nullable(Type.String()),
  created_at: Timestamp,
  updated_at: Timestamp,
  started_at: Type.Union([Timestamp, Type.Null()]),
  finished_at: Type.Union([Timestamp, Type.Null()]),
})

export const DeploymentList = Type.Object({ deployments: Type.Array(Deployment) })
