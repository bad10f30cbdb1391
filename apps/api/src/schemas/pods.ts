import { Type } from '@sinclair/typebox'
import { Timestamp } from './common.js'
import { Text } from './text.js'

const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()])

// Path and query values are checked by @portico/pods (its messages are part of the API), so the
// schemas only bound their size.
export const PodParams = Type.Object({
  customer: Text({ maxLength: 200 }),
  env: Text({ maxLength: 200 }),
})

export const PodRef = Type.Object({ customer: Type.String(), env: Type.String() })
export const PodList = Type.Array(PodRef)

/**
 * The parsed spec document itself (`{apiVersion, kind, metadata, spec, …}`, whatever keys it
 * has): the legacy read shape the frontend reads `data.spec.compute.instance_name` from.
 */
export const PodDocument = Type.Object({}, { additionalProperties: true })

/** `GET /api/v1/pods/{customer}/{env}`: the document plus where it lives and its version. */
export const PodView = Type.Object({
  customer: Type.String(),
  env: Type.String(),
  /** Path of the spec file in the specs repository. */
  path: Type.String(),
  /** Git blob sha of the spec file (GitHub's contents `sha`). */
  sha: Type.String(),
  /** GitHub's ETag of the contents response, when it sent one. */
  etag: Type.Union([Type.String(), Type.Null()]),
  document: PodDocument,
})

export const RefreshResult = Type.Object({ message: Type.String() })

/**
 * `POST /api/pod` body. Checked by `validateDeployRequest` (its messages are those of the
 * system Portico replaces), so the route only documents this schema (`attachValidation`);
 * `mode` is optional (create-or-update without it). An optional field sent as null (or ""
 * for `commit_message` and `mode`) counts as not sent, so the schema allows exactly those.
 */
export const DeployBody = Type.Object(
  {
    customer: Type.String({ minLength: 1, maxLength: 50, pattern: '^[a-zA-Z0-9_-]+$' }),
    env: Type.String({ minLength: 1, maxLength: 50, pattern: '^[a-zA-Z0-9_-]+$' }),
    spec: Type.Object(
      {
        instance_name: Type.String({
          minLength: 1,
          maxLength: 30,
          pattern: '^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$',
        }),
        waf_enabled: Type.Optional(
          Type.Union([Type.Boolean(), Type.Null()], {
            description: 'Left out or null: an existing pod keeps its current setting; a new pod gets false.',
          }),
        ),
      },
      { additionalProperties: false },
    ),
    commit_message: Type.Optional(
      Type.Union([Type.String({ maxLength: 500 }), Type.Null()], {
        description: 'Default "Deploy {customer}/{env}" (also for null or "").',
      }),
    ),
    mode: Type.Optional(
      Type.Union([Type.Literal('new'), Type.Literal('edit'), Type.Literal(''), Type.Null()], {
        description:
          '"new": 409 POD_EXISTS when the pod exists; "edit": 404 POD_NOT_FOUND when it does not. Without it (or null, or ""): create or update.',
      }),
    ),
  },
  { additionalProperties: false },
)

export const DeployHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({ description: 'Retries with one key get the first answer.' }),
  ),
})

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
  stage: Type.Union(
    [...['pr_open', 'merged', 'applied', 'apply_failed', 'closed'].map((s) => Type.Literal(s)), Type.Null()],
    {
      description:
        'Where the pull request is: pr_open → merged → applied | apply_failed (the checks on the merge commit), or closed unmerged; null until the pull request exists. Followed by webhooks and the reconciler.',
    },
  ),
  merged_at: Type.Union([Timestamp, Type.Null()]),
  merge_commit_sha: Nullable(Type.String()),
  applied_at: Type.Union([Timestamp, Type.Null()]),
  checks: Type.Array(
    Type.Object({
      name: Type.String(),
      conclusion: Nullable(Type.String({ description: 'null while the check runs' })),
      url: Nullable(Type.String()),
    }),
    { description: 'The checks seen on the merge commit (check runs and commit statuses).' },
  ),
  superseded_by: Nullable(
    Type.String({ description: 'A newer deployment of the same pod whose pull request replaces this one.' }),
  ),
})

export const DeploymentList = Type.Object({ deployments: Type.Array(Deployment) })
