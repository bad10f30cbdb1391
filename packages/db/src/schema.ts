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
export type DeploymentStatus = 'queued' | 'running' | 'succeeded' | 'failed'

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
  /** Encrypted PAT; NULL once the connection ended (failed, expired): tokens are kept no longer than needed. */
  encrypted_token: ColumnType<string | null, string, string | null>
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
