import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely'

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>

export type TenantRole = 'owner' | 'admin' | 'member'
export const PROJECT_ROLES = [
  'owner',
  'admin',
  'pm-csm',
  'qa-manual',
  'qa-automation',
  'developer',
  'viewer',
] as const
export type ProjectRole = (typeof PROJECT_ROLES)[number]
export const CONNECTION_STATUSES = ['pending', 'cloning', 'cloned', 'analyzed', 'failed', 'expired'] as const
export type ConnectionStatus = (typeof CONNECTION_STATUSES)[number]
/** How a connection reaches its repository (migration 0007). */
export const CONNECTION_AUTH_METHODS = ['pat', 'app'] as const
export type ConnectionAuthMethod = (typeof CONNECTION_AUTH_METHODS)[number]
export type DeploymentStatus = 'queued' | 'running' | 'succeeded' | 'failed'
/**
 * Where a deploy's pull request is: open → merged → applied | apply_failed (the specs
 * repository's checks on the merge commit), or closed unmerged. Null until the PR exists.
 */
export const DEPLOYMENT_STAGES = ['pr_open', 'merged', 'applied', 'apply_failed', 'closed'] as const
export type DeploymentStage = (typeof DEPLOYMENT_STAGES)[number]
/** One check on a merge commit: a check run or a commit status context. */
export interface DeploymentCheck {
  name: string
  /** GitHub's conclusion (check runs) or state (statuses); null while not completed. */
  conclusion: string | null
  url: string | null
}
/** ETags of the GitHub resources the reconciler last read, for conditional requests. */
export interface DeploymentEtags {
  pull?: string
  check_runs?: string
  status?: string
  /** Reconciler passes in a row that found the pull request missing (404); gone at the success. */
  pull_missing?: number
  /**
   * Reconciler passes in a row whose merge commit GitHub did not know (422 "No commit found for
   * SHA": history rewritten after the merge); gone at the next answer.
   */
  commit_missing?: number
  /** When (epoch ms) the run of passes counted by `pull_missing` or `commit_missing` began. */
  missing_since?: number
  /** Set once the merge commit stayed unknown: no checks can come, and it is no longer followed. */
  commit_lost?: true
}
export const WEBHOOK_OUTCOMES = ['queued', 'processed', 'ignored', 'failed'] as const
export type WebhookOutcome = (typeof WEBHOOK_OUTCOMES)[number]

export interface UsersTable {
  id: Generated<string>
  github_id: ColumnType<number, number, number>
  login: string
  name: string | null
  avatar_url: string | null
  created_at: Timestamp
  updated_at: Timestamp
  last_login_at: NullableTimestamp
  /** Set when a different GitHub id signed in with this login: the login no longer resolves here. */
  login_released_at: NullableTimestamp
}

export interface TenantsTable {
  id: Generated<string>
  slug: string
  name: string
  created_at: Timestamp
  updated_at: Timestamp
}

export interface TenantMembersTable {
  tenant_id: string
  user_id: string
  role: TenantRole
  created_at: Timestamp
  updated_at: Timestamp
}

export interface ProjectsTable {
  id: Generated<string>
  tenant_id: string
  name: string
  slug: string
  created_at: Timestamp
  updated_at: Timestamp
}

export interface ProjectMembersTable {
  project_id: string
  user_id: string
  role: ProjectRole
  created_at: Timestamp
  updated_at: Timestamp
}

export interface AnalysisSummary {
  frameworks: string[]
  routes: { method: string; path: string; file: string }[]
  components: { name: string; file: string }[]
  endpoints: number
  [extra: string]: unknown
}

export interface GithubConnectionsTable {
  id: Generated<string>
  tenant_id: string
  project_id: string
  repo_url: string
  owner: string
  repo: string
  default_branch: string | null
  /**
   * Encrypted PAT; NULL once the connection ended (failed, expired): tokens are kept no longer
   * than needed. Always NULL for App connections (tokens are minted per clone, never stored).
   */
  encrypted_token: ColumnType<string | null, string | null, string | null>
  token_kind: string | null
  token_expires_at: NullableTimestamp
  clone_path: string | null
  status: Generated<ConnectionStatus>
  progress: Generated<number>
  commit_sha: string | null
  routes_count: Generated<number>
  components_count: Generated<number>
  endpoints_count: Generated<number>
  analysis_summary: ColumnType<AnalysisSummary | null, string | null | undefined, string | null>
  error_message: string | null
  /** Stable code of the last failure (`REPOSITORY_EMPTY`, `INVALID_TOKEN`…). */
  error_code: ColumnType<string | null, string | null | undefined, string | null>
  /** GitHub's numeric repository id (bigint, read as a string); null for rows made before 0005. */
  github_repo_id: ColumnType<string | null, string | number | null | undefined, string | number | null>
  /** Canonical `owner/name` as GitHub last answered it (follows renames and transfers). */
  repo_full_name: ColumnType<string | null, string | null | undefined, string | null>
  /** `pat`: a stored personal access token; `app`: the GitHub App's installation {@link installation_id}. */
  auth_method: ColumnType<ConnectionAuthMethod, ConnectionAuthMethod | undefined, ConnectionAuthMethod>
  /** The GitHub App installation an `app` connection clones through (bigint, read as a string). */
  installation_id: ColumnType<string | null, string | number | null | undefined, string | number | null>
  expires_at: NullableTimestamp
  /** When a clone or refresh met GitHub's 401 for the stored token (token_status "invalid"). */
  token_invalid_at: NullableTimestamp
  /** The refresh in flight or the last one that failed; null when none is (see docs/connections.md). */
  refresh_status: ColumnType<RefreshStatus | null, RefreshStatus | null | undefined, RefreshStatus | null>
  refresh_requested_at: NullableTimestamp
  refresh_started_at: NullableTimestamp
  /** When the last successful refresh landed. */
  refreshed_at: NullableTimestamp
  refresh_error_code: ColumnType<string | null, string | null | undefined, string | null>
  refresh_error_message: ColumnType<string | null, string | null | undefined, string | null>
  created_by: string | null
  created_at: Timestamp
  updated_at: Timestamp
}

/** A refresh's state beside the connection's: `queued`/`running` while in flight, `failed` after one failed. */
export type RefreshStatus = 'queued' | 'running' | 'failed'

export interface DeploymentsTable {
  id: Generated<string>
  customer: string
  env: string
  instance_name: string
  waf_enabled: Generated<boolean>
  mode: 'new' | 'edit' | null
  status: Generated<DeploymentStatus>
  branch: string | null
  pr_url: string | null
  pr_number: number | null
  commit_message: string | null
  error_message: string | null
  /** Stable code and HTTP status of a failed deploy (what the waiting POST answers). */
  error_code: string | null
  error_status: number | null
  requested_by: string | null
  encrypted_token: string | null
  /** Whose token the job acts with: the requester's (`encrypted_token`) or GH_TOKEN. */
  token_source: Generated<'user' | 'service'>
  created_at: Timestamp
  updated_at: Timestamp
  started_at: NullableTimestamp
  finished_at: NullableTimestamp
  stage: ColumnType<DeploymentStage | null, DeploymentStage | null | undefined, DeploymentStage | null>
  merged_at: NullableTimestamp
  merge_commit_sha: ColumnType<string | null, string | null | undefined, string | null>
  applied_at: NullableTimestamp
  checks: ColumnType<DeploymentCheck[] | null, string | null | undefined, string | null>
  /** The newer deployment of the same pod whose pull request replaces this one's. */
  superseded_by: ColumnType<string | null, string | null | undefined, string | null>
  github_etags: ColumnType<DeploymentEtags | null, string | null | undefined, string | null>
  reconciled_at: NullableTimestamp
}

/** One GitHub webhook delivery as received (verified) by POST /webhooks/github. GitHub ids (bigint) read as numbers. */
export interface WebhookDeliveriesTable {
  id: Generated<string>
  /** `X-GitHub-Delivery`: unique; GitHub's redeliveries keep it. */
  delivery_id: string
  event: string
  action: string | null
  hook_id: ColumnType<number | null, number | null | undefined, number | null>
  installation_id: ColumnType<number | null, number | null | undefined, number | null>
  repository_id: ColumnType<number | null, number | null | undefined, number | null>
  payload: ColumnType<unknown, string, string>
  received_at: Timestamp
  processed_at: NullableTimestamp
  outcome: ColumnType<WebhookOutcome, WebhookOutcome | undefined, WebhookOutcome>
  /** What processing did, in a few words (`deployment … merged`, `no matching deployment`). */
  result: ColumnType<string | null, string | null | undefined, string | null>
  error: ColumnType<string | null, string | null | undefined, string | null>
}

/** Kysely's view of the Portico database. */
export interface Database {
  users: UsersTable
  tenants: TenantsTable
  tenant_members: TenantMembersTable
  projects: ProjectsTable
  project_members: ProjectMembersTable
  github_connections: GithubConnectionsTable
  deployments: DeploymentsTable
  webhook_deliveries: WebhookDeliveriesTable
}

export type UserRow = Selectable<UsersTable>
export type NewUser = Insertable<UsersTable>
export type TenantRow = Selectable<TenantsTable>
export type ProjectRow = Selectable<ProjectsTable>
export type ConnectionRow = Selectable<GithubConnectionsTable>
export type NewConnection = Insertable<GithubConnectionsTable>
export type ConnectionUpdate = Updateable<GithubConnectionsTable>
export type DeploymentRow = Selectable<DeploymentsTable>
export type NewDeployment = Insertable<DeploymentsTable>
export type DeploymentUpdate = Updateable<DeploymentsTable>
export type WebhookDeliveryRow = Selectable<WebhookDeliveriesTable>
export type NewWebhookDelivery = Insertable<WebhookDeliveriesTable>
