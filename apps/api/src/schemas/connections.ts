import { CONNECTION_STATUSES } from '@portico/db'
import { Type } from '@sinclair/typebox'
import { Timestamp } from './common.js'
import { NAME_PATTERN, Text } from './text.js'

const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()])

export const ConnectionParams = Type.Object({ projectId: Text({ maxLength: 64 }) })

/**
 * A personal access token field: not blank (an empty or white-space PAT is a 400
 * VALIDATION_ERROR, "body.pat must not be blank…", and GitHub is not asked: it was 400
 * INVALID_TOKEN, as though GitHub had refused it), no NUL, at most 512 characters. No
 * `minLength`: the pattern refuses `""` with the same sentence instead of Ajv's own wording.
 */
const PatField = Type.String({
  maxLength: 512,
  pattern: NAME_PATTERN,
  description:
    'Personal access token with read access to the repository (trimmed; not blank). Never returned.',
})

/** `POST /api/v1/projects/{projectId}/github` with a PAT; both fields are trimmed before use. */
export const CreatePatConnectionBody = Type.Object(
  {
    repo_url: Text({
      maxLength: 2048,
      description: 'https://HOST/owner/repo(.git) or git@HOST:owner/repo(.git) on the configured GitHub.',
    }),
    pat: PatField,
  },
  { additionalProperties: false, title: 'PatConnection' },
)

const GithubId = (description: string) =>
  Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description })

/** `POST /api/v1/projects/{projectId}/github` through the GitHub App; both ids are checked, never trusted. */
export const CreateAppConnectionBody = Type.Object(
  {
    installation_id: GithubId('An installation of Portico’s GitHub App (from GET …/github/installations).'),
    repository_id: GithubId('GitHub’s numeric id of a repository selected in that installation.'),
  },
  { additionalProperties: false, title: 'AppConnection' },
)

/** Either a PAT and a repository URL, or an App installation and a repository id. */
export const CreateConnectionBody = Type.Union([CreatePatConnectionBody, CreateAppConnectionBody])

const InstallationRepository = Type.Object({
  id: Type.Integer(),
  full_name: Type.String(),
  private: Type.Boolean(),
  default_branch: Nullable(Type.String()),
})

/** `GET …/github/installations`: what both the signed-in user and the App can reach. */
export const Installations = Type.Object({
  app: Type.Object({
    slug: Type.String(),
    install_url: Type.String({
      description: '{GITHUB_URL}/apps/{slug}/installations/new with a signed state leading back here.',
    }),
  }),
  installations: Type.Array(
    Type.Object({
      id: Type.Integer(),
      account: Type.Object({ login: Type.String(), type: Type.String() }),
      repository_selection: Type.Union([Type.Literal('all'), Type.Literal('selected')]),
      repositories: Type.Array(InstallationRepository),
    }),
  ),
})

export const InstallationsQuery = Type.Object({
  return_to: Type.Optional(
    Text({ maxLength: 1024, description: 'Same-origin path the install page leads back to (default /).' }),
  ),
})

/** `GET /github/setup`: GitHub's post-install redirect (the App's Setup URL). */
export const SetupQuery = Type.Object({
  installation_id: Type.Optional(Text({ maxLength: 32 })),
  setup_action: Type.Optional(Text({ maxLength: 32 })),
  state: Type.Optional(Text({ maxLength: 2048 })),
})
/** `PATCH /api/v1/projects/{projectId}/github`: replace the PAT of a PAT connection (trimmed). */
export const ReplaceTokenBody = Type.Object({ pat: PatField }, { additionalProperties: false })

/**
 * `POST /api/v1/projects/{projectId}/github/refresh`: an empty body, or a PAT for a connection
 * whose token was wiped when it ended (failed, expired) or that GitHub rejected.
 */
export const RefreshBody = Type.Union([
  Type.Object({ pat: Type.Optional(PatField) }, { additionalProperties: false }),
  Type.Null(),
])

const AnalysisSummary = Type.Object(
  {
    frameworks: Type.Array(Type.String()),
    routes: Type.Array(Type.Object({ method: Type.String(), path: Type.String(), file: Type.String() })),
    components: Type.Array(Type.Object({ name: Type.String(), file: Type.String() })),
    endpoints: Type.Integer(),
    files_scanned: Type.Optional(Type.Integer()),
    truncated: Type.Optional(Type.Boolean()),
    timed_out: Type.Optional(Type.Boolean()),
  },
  { description: 'Routes and components found in the clone; null until analysed.' },
)

/** A repository connection as the API returns it (the token is never part of it). */
export const Connection = Type.Object({
  id: Type.String(),
  project_id: Type.String(),
  repo_url: Type.String(),
  status: Type.Union(CONNECTION_STATUSES.map((s) => Type.Literal(s))),
  progress: Type.Integer({ minimum: 0, maximum: 100 }),
  default_branch: Nullable(Type.String()),
  commit_sha: Nullable(Type.String()),
  routes_count: Type.Integer(),
  components_count: Type.Integer(),
  endpoints_count: Type.Integer(),
  analysis_summary: Type.Union([AnalysisSummary, Type.Null()]),
  error_message: Nullable(Type.String()),
  /** Stable code of the last failure, e.g. `REPOSITORY_EMPTY`. */
  error_code: Nullable(Type.String()),
  /** The repository's current `owner/name` (GitHub's canonical name, updated on each clone). */
  full_name: Type.String(),
  /** GitHub's numeric repository id (null for connections made before it was recorded). */
  github_repo_id: Type.Union([Type.Integer(), Type.Null()]),
  /** `pat`: connected with a personal access token; `app`: through the GitHub App. */
  auth_method: Type.Union([Type.Literal('pat'), Type.Literal('app')]),
  /** The App installation of an `app` connection; null for `pat`. */
  installation_id: Type.Union([Type.Integer(), Type.Null()]),
  /** GitHub's numeric repository id (same as github_repo_id). */
  repository_id: Type.Union([Type.Integer(), Type.Null()]),
  expires_at: Type.Union([Timestamp, Type.Null()]),
  /**
   * `valid`, `expiring` (GitHub's token expiry within 7 days), `expired` (after it), or `invalid`
   * (a clone or refresh met GitHub's 401; cleared by replacing the PAT).
   */
  token_status: Type.Union(['valid', 'expiring', 'expired', 'invalid'].map((s) => Type.Literal(s))),
  /** When the PAT expires, from GitHub's `github-authentication-token-expiration` header; null if never. */
  token_expires_at: Type.Union([Timestamp, Type.Null()]),
  /** The refresh in flight (`queued`, `running`), or `failed` when the last one failed; null otherwise. */
  refresh_status: Type.Union([
    Type.Literal('queued'),
    Type.Literal('running'),
    Type.Literal('failed'),
    Type.Null(),
  ]),
  refresh_requested_at: Type.Union([Timestamp, Type.Null()]),
  /** When the last refresh landed (new `commit_sha` and analysis). */
  refreshed_at: Type.Union([Timestamp, Type.Null()]),
  /** Stable code and sentence of the last failed refresh (`TOKEN_EXPIRED`, `REPOSITORY_NOT_FOUND`…). */
  refresh_error_code: Nullable(Type.String()),
  refresh_error_message: Nullable(Type.String()),
  created_at: Timestamp,
  updated_at: Timestamp,
})
