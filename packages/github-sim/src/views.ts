import { createHash } from 'node:crypto'
import type { components } from '@octokit/openapi-types'
import type { CommitInfo, Identity, TreeEntry } from './git-repo.js'
import type { OrgRecord, PullRecord, RepoRecord, UserRecord, World } from './state.js'
import type { RepoPermission } from './types.js'

export type Schemas = components['schemas']

/** Base URLs of a running simulator, used to render GitHub's many `*_url` fields. */
export interface Urls {
  web: string
  api: string
}

/** GitHub's base64 node ids; stable per kind and id. */
export function nodeId(kind: string, id: number | string): string {
  return Buffer.from(`0${kind}${id}`).toString('base64').replace(/=+$/, '')
}

/** Deterministic numeric id for objects identified by a sha or name. */
export function numericId(key: string): number {
  return createHash('sha1').update(key).digest().readUInt32BE(0)
}

export function simpleUser(u: UserRecord | OrgRecord, urls: Urls): Schemas['simple-user'] {
  const api = `${urls.api}/users/${u.login}`
  const isOrg = !('email' in u)
  return {
    login: u.login,
    id: u.id,
    node_id: nodeId(isOrg ? 'Organization' : 'User', u.id),
    avatar_url: 'avatarUrl' in u ? u.avatarUrl : `https://avatars.githubusercontent.com/u/${u.id}?v=4`,
    gravatar_id: '',
    url: api,
    html_url: `${urls.web}/${u.login}`,
    followers_url: `${api}/followers`,
    following_url: `${api}/following{/other_user}`,
    gists_url: `${api}/gists{/gist_id}`,
    starred_url: `${api}/starred{/owner}{/repo}`,
    subscriptions_url: `${api}/subscriptions`,
    organizations_url: `${api}/orgs`,
    repos_url: `${api}/repos`,
    events_url: `${api}/events{/privacy}`,
    received_events_url: `${api}/received_events`,
    type: isOrg ? 'Organization' : (u as UserRecord).type,
    user_view_type: 'public',
    site_admin: false,
  }
}

/** How many public repositories `login` owns. */
function publicRepoCount(world: World, login: string): number {
  const owner = login.toLowerCase()
  return [...world.repos.values()].filter((r) => !r.private && r.owner.toLowerCase() === owner).length
}

export function publicUser(world: World, u: UserRecord, urls: Urls): Schemas['public-user'] {
  const publicRepos = publicRepoCount(world, u.login)
  return {
    ...simpleUser(u, urls),
    name: u.name,
    company: null,
    blog: '',
    location: null,
    email: u.email,
    hireable: null,
    bio: null,
    twitter_username: null,
    public_repos: publicRepos,
    public_gists: 0,
    followers: 0,
    following: 0,
    created_at: u.createdAt,
    updated_at: u.createdAt,
  }
}

export function privateUser(world: World, u: UserRecord, urls: Urls): Schemas['private-user'] {
  const owned = [...world.repos.values()].filter((r) => r.owner.toLowerCase() === u.login.toLowerCase())
  const privateOwned = owned.filter((r) => r.private).length
  return {
    ...publicUser(world, u, urls),
    user_view_type: 'private',
    notification_email: u.email,
    private_gists: 0,
    total_private_repos: privateOwned,
    owned_private_repos: privateOwned,
    disk_usage: 0,
    collaborators: 0,
    two_factor_authentication: true,
    plan: { name: 'free', space: 976562499, private_repos: 10000, collaborators: 0 },
  }
}

export function permissionsOf(
  p: RepoPermission | null,
): NonNullable<Schemas['full-repository']['permissions']> {
  const admin = p === 'admin'
  const push = admin || p === 'write'
  return { admin, maintain: admin, push, triage: push, pull: p !== null }
}

/** The `repository` shape shared by full repos and nested PR head/base repos. */
export function repository(
  world: World,
  r: RepoRecord,
  urls: Urls,
  perm: RepoPermission | null,
  sizeKb = 0,
): Schemas['repository'] {
  return repoFields(world, r, urls, perm, sizeKb)
}

function repoFields(world: World, r: RepoRecord, urls: Urls, perm: RepoPermission | null, sizeKb: number) {
  const fullName = `${r.owner}/${r.name}`
  const api = `${urls.api}/repos/${fullName}`
  const ownerRec = world.user(r.owner) ?? world.org(r.owner)
  const owner = ownerRec ? simpleUser(ownerRec, urls) : simpleUser(placeholderUser(r.owner), urls)
  const host = new URL(urls.web).host
  return {
    id: r.id,
    node_id: nodeId('Repository', r.id),
    name: r.name,
    full_name: fullName,
    owner,
    private: r.private,
    visibility: r.private ? 'private' : 'public',
    html_url: `${urls.web}/${fullName}`,
    description: r.description,
    fork: false,
    url: api,
    archive_url: `${api}/{archive_format}{/ref}`,
    assignees_url: `${api}/assignees{/user}`,
    blobs_url: `${api}/git/blobs{/sha}`,
    branches_url: `${api}/branches{/branch}`,
    collaborators_url: `${api}/collaborators{/collaborator}`,
    comments_url: `${api}/comments{/number}`,
    commits_url: `${api}/commits{/sha}`,
    compare_url: `${api}/compare/{base}...{head}`,
    contents_url: `${api}/contents/{+path}`,
    contributors_url: `${api}/contributors`,
    deployments_url: `${api}/deployments`,
    downloads_url: `${api}/downloads`,
    events_url: `${api}/events`,
    forks_url: `${api}/forks`,
    git_commits_url: `${api}/git/commits{/sha}`,
    git_refs_url: `${api}/git/refs{/sha}`,
    git_tags_url: `${api}/git/tags{/sha}`,
    git_url: `git://${host}/${fullName}.git`,
    issue_comment_url: `${api}/issues/comments{/number}`,
    issue_events_url: `${api}/issues/events{/number}`,
    issues_url: `${api}/issues{/number}`,
    keys_url: `${api}/keys{/key_id}`,
    labels_url: `${api}/labels{/name}`,
    languages_url: `${api}/languages`,
    merges_url: `${api}/merges`,
    milestones_url: `${api}/milestones{/number}`,
    notifications_url: `${api}/notifications{?since,all,participating}`,
    pulls_url: `${api}/pulls{/number}`,
    releases_url: `${api}/releases{/id}`,
    ssh_url: `git@${host}:${fullName}.git`,
    stargazers_url: `${api}/stargazers`,
    statuses_url: `${api}/statuses/{sha}`,
    subscribers_url: `${api}/subscribers`,
    subscription_url: `${api}/subscription`,
    tags_url: `${api}/tags`,
    teams_url: `${api}/teams`,
    trees_url: `${api}/git/trees{/sha}`,
    clone_url: `${urls.web}/${fullName}.git`,
    mirror_url: null,
    hooks_url: `${api}/hooks`,
    svn_url: `${urls.web}/${fullName}`,
    homepage: null,
    language: null,
    forks_count: 0,
    stargazers_count: 0,
    watchers_count: 0,
    size: sizeKb,
    default_branch: r.defaultBranch,
    open_issues_count: r.pulls.filter((p) => p.state === 'open').length,
    is_template: false,
    topics: [],
    has_issues: true,
    has_projects: true,
    has_wiki: !r.private,
    has_pages: false,
    has_downloads: true,
    has_discussions: false,
    archived: false,
    disabled: false,
    pushed_at: r.pushedAt,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
    permissions: permissionsOf(perm),
    allow_rebase_merge: true,
    allow_squash_merge: true,
    allow_merge_commit: true,
    allow_auto_merge: false,
    delete_branch_on_merge: false,
    allow_forking: !r.private,
    web_commit_signoff_required: false,
    license: null,
    forks: 0,
    open_issues: r.pulls.filter((p) => p.state === 'open').length,
    watchers: 0,
  }
}

export function fullRepository(
  world: World,
  r: RepoRecord,
  urls: Urls,
  perm: RepoPermission | null,
  sizeKb: number,
): Schemas['full-repository'] {
  const base = repoFields(world, r, urls, perm, sizeKb)
  const org = world.org(r.owner)
  const full: Schemas['full-repository'] = {
    ...base,
    has_discussions: false,
    network_count: 0,
    subscribers_count: 0,
    temp_clone_token: null,
    security_and_analysis: null,
  }
  if (org) full.organization = simpleUser(org, urls)
  return full
}

function placeholderUser(login: string): UserRecord {
  return {
    login,
    id: numericId(login),
    name: login,
    email: null,
    avatarUrl: '',
    type: 'User',
    createdAt: '',
  }
}

export function gitRef(
  r: RepoRecord,
  urls: Urls,
  ref: string,
  sha: string,
  type: string,
): Schemas['git-ref'] {
  const api = `${urls.api}/repos/${r.owner}/${r.name}`
  const objType = type === 'tag' ? 'tags' : 'commits'
  return {
    ref,
    node_id: nodeId('Ref', `${r.id}:${ref}`),
    url: `${api}/git/${ref}`,
    object: { type, sha, url: `${api}/git/${objType}/${sha}` },
  }
}

export function gitTree(
  r: RepoRecord,
  urls: Urls,
  sha: string,
  entries: TreeEntry[],
  truncated: boolean,
): Schemas['git-tree'] {
  const api = `${urls.api}/repos/${r.owner}/${r.name}`
  return {
    sha,
    url: `${api}/git/trees/${sha}`,
    tree: entries.map((e) => {
      const item: Schemas['git-tree']['tree'][number] = {
        path: e.path,
        mode: e.mode,
        type: e.type,
        sha: e.sha,
      }
      if (e.type === 'blob') {
        item.size = e.size ?? 0
        item.url = `${api}/git/blobs/${e.sha}`
      } else if (e.type === 'tree') item.url = `${api}/git/trees/${e.sha}`
      return item
    }),
    truncated,
  }
}

function gitIdentity(i: Identity): Schemas['git-commit']['author'] {
  return { name: i.name, email: i.email, date: i.date }
}

export function gitCommit(r: RepoRecord, urls: Urls, c: CommitInfo): Schemas['git-commit'] {
  const api = `${urls.api}/repos/${r.owner}/${r.name}`
  return {
    sha: c.sha,
    node_id: nodeId('Commit', c.sha),
    url: `${api}/git/commits/${c.sha}`,
    html_url: `${urls.web}/${r.owner}/${r.name}/commit/${c.sha}`,
    author: gitIdentity(c.author),
    committer: gitIdentity(c.committer),
    tree: { sha: c.tree, url: `${api}/git/trees/${c.tree}` },
    message: c.message.replace(/\n$/, ''),
    parents: c.parents.map((p) => ({
      sha: p,
      url: `${api}/git/commits/${p}`,
      html_url: `${urls.web}/${r.owner}/${r.name}/commit/${p}`,
    })),
    verification: { verified: false, reason: 'unsigned', signature: null, payload: null, verified_at: null },
  }
}

export function shortBranch(r: RepoRecord, urls: Urls, name: string, sha: string): Schemas['short-branch'] {
  return {
    name,
    commit: { sha, url: `${urls.api}/repos/${r.owner}/${r.name}/commits/${sha}` },
    protected: false,
  }
}

/** The `commit` schema (REST commits API shape), used inside branch responses. */
export function restCommit(world: World, r: RepoRecord, urls: Urls, c: CommitInfo): Schemas['commit'] {
  const api = `${urls.api}/repos/${r.owner}/${r.name}`
  const byEmail = (email: string) => {
    for (const u of world.users.values()) if (u.email && u.email === email) return simpleUser(u, urls)
    return null
  }
  return {
    url: `${api}/commits/${c.sha}`,
    sha: c.sha,
    node_id: nodeId('Commit', c.sha),
    html_url: `${urls.web}/${r.owner}/${r.name}/commit/${c.sha}`,
    comments_url: `${api}/commits/${c.sha}/comments`,
    commit: {
      url: `${api}/git/commits/${c.sha}`,
      author: gitIdentity(c.author),
      committer: gitIdentity(c.committer),
      message: c.message.replace(/\n$/, ''),
      comment_count: 0,
      tree: { sha: c.tree, url: `${api}/git/trees/${c.tree}` },
      verification: {
        verified: false,
        reason: 'unsigned',
        signature: null,
        payload: null,
        verified_at: null,
      },
    },
    author: byEmail(c.author.email),
    committer: byEmail(c.committer.email),
    parents: c.parents.map((p) => ({
      sha: p,
      url: `${api}/commits/${p}`,
      html_url: `${urls.web}/${r.owner}/${r.name}/commit/${p}`,
    })),
  }
}

export function branchWithProtection(
  world: World,
  r: RepoRecord,
  urls: Urls,
  name: string,
  c: CommitInfo,
): Schemas['branch-with-protection'] {
  const api = `${urls.api}/repos/${r.owner}/${r.name}`
  return {
    name,
    commit: restCommit(world, r, urls, c),
    _links: { html: `${urls.web}/${r.owner}/${r.name}/tree/${name}`, self: `${api}/branches/${name}` },
    protected: false,
    protection: {
      enabled: false,
      required_status_checks: { enforcement_level: 'off', contexts: [], checks: [] },
    },
    protection_url: `${api}/branches/${name}/protection`,
  }
}

function contentLinks(r: RepoRecord, urls: Urls, path: string, sha: string, ref: string, type: string) {
  const api = `${urls.api}/repos/${r.owner}/${r.name}`
  const kind = type === 'dir' ? 'tree' : 'blob'
  const self = `${api}/contents/${encodePath(path)}?ref=${encodeURIComponent(ref)}`
  const git = `${api}/git/${type === 'dir' ? 'trees' : 'blobs'}/${sha}`
  const html = `${urls.web}/${r.owner}/${r.name}/${kind}/${ref}/${encodePath(path)}`
  return { self, git, html }
}

export function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/')
}

export function contentFile(
  r: RepoRecord,
  urls: Urls,
  path: string,
  sha: string,
  content: Buffer,
  ref: string,
): Schemas['content-file'] {
  const links = contentLinks(r, urls, path, sha, ref, 'file')
  return {
    type: 'file',
    encoding: 'base64',
    size: content.length,
    name: path.split('/').pop() ?? path,
    path,
    content: (content.toString('base64').match(/.{1,60}/g) ?? []).join('\n') + (content.length ? '\n' : ''),
    sha,
    url: links.self,
    git_url: links.git,
    html_url: links.html,
    download_url: `${urls.web}/${r.owner}/${r.name}/raw/${ref}/${encodePath(path)}`,
    _links: links,
  }
}

export function contentDirectory(
  r: RepoRecord,
  urls: Urls,
  dirPath: string,
  entries: TreeEntry[],
  ref: string,
): Schemas['content-directory'] {
  return entries.map((e) => {
    const path = dirPath ? `${dirPath}/${e.path}` : e.path
    const type =
      e.type === 'tree' ? 'dir' : e.type === 'commit' ? 'submodule' : e.mode === '120000' ? 'symlink' : 'file'
    const links = contentLinks(r, urls, path, e.sha, ref, type)
    return {
      type,
      size: e.size ?? 0,
      name: e.path,
      path,
      sha: e.sha,
      url: links.self,
      git_url: links.git,
      html_url: links.html,
      download_url:
        type === 'file' ? `${urls.web}/${r.owner}/${r.name}/raw/${ref}/${encodePath(path)}` : null,
      _links: links,
    }
  })
}

export function fileCommit(
  r: RepoRecord,
  urls: Urls,
  path: string,
  blobSha: string,
  size: number,
  branch: string,
  c: CommitInfo,
): Schemas['file-commit'] {
  const links = contentLinks(r, urls, path, blobSha, branch, 'file')
  const commit = gitCommit(r, urls, c)
  return {
    content: {
      name: path.split('/').pop() ?? path,
      path,
      sha: blobSha,
      size,
      url: links.self,
      html_url: links.html,
      git_url: links.git,
      download_url: `${urls.web}/${r.owner}/${r.name}/raw/${branch}/${encodePath(path)}`,
      type: 'file',
      _links: links,
    },
    commit: {
      sha: commit.sha,
      node_id: commit.node_id,
      url: commit.url,
      html_url: commit.html_url,
      author: commit.author,
      committer: commit.committer,
      message: commit.message,
      tree: commit.tree,
      parents: commit.parents,
      verification: {
        verified: false,
        reason: 'unsigned',
        signature: null,
        payload: null,
        verified_at: null,
      },
    },
  }
}

export function orgMembership(
  org: OrgRecord,
  user: UserRecord,
  m: { role: 'member' | 'admin'; state: 'active' | 'pending' },
  urls: Urls,
): Schemas['org-membership'] {
  return {
    url: `${urls.api}/orgs/${org.login}/memberships/${user.login}`,
    state: m.state,
    role: m.role,
    organization_url: `${urls.api}/orgs/${org.login}`,
    organization: orgSimple(org, urls),
    user: simpleUser(user, urls),
  }
}

export function workflow(r: RepoRecord, urls: Urls, path: string, name: string): Schemas['workflow'] {
  const id = numericId(`${r.id}:${path}`)
  const api = `${urls.api}/repos/${r.owner}/${r.name}`
  const file = path.split('/').pop() ?? path
  return {
    id,
    node_id: nodeId('Workflow', id),
    name,
    path,
    state: 'active',
    created_at: r.createdAt,
    updated_at: r.updatedAt,
    url: `${api}/actions/workflows/${id}`,
    html_url: `${urls.web}/${r.owner}/${r.name}/blob/${r.defaultBranch}/${path}`,
    badge_url: `${urls.web}/${r.owner}/${r.name}/workflows/${encodeURIComponent(file)}/badge.svg`,
  }
}

export function pullRequestSimple(
  world: World,
  r: RepoRecord,
  urls: Urls,
  p: PullRecord,
  perm: RepoPermission | null,
): Schemas['pull-request-simple'] {
  return pullFields(world, r, urls, p, perm)
}

function pullFields(world: World, r: RepoRecord, urls: Urls, p: PullRecord, perm: RepoPermission | null) {
  const api = `${urls.api}/repos/${r.owner}/${r.name}`
  const html = `${urls.web}/${r.owner}/${r.name}/pull/${p.number}`
  const user = world.user(p.userLogin)
  const userJson = user ? simpleUser(user, urls) : simpleUser(placeholderUser(p.userLogin), urls)
  const headRepo = world.repos.get(p.head.repoKey) ?? r
  const ownerRec = world.user(r.owner) ?? world.org(r.owner)
  const ownerJson = ownerRec ? simpleUser(ownerRec, urls) : userJson
  const headOwnerRec = world.user(headRepo.owner) ?? world.org(headRepo.owner)
  const headOwnerJson = headOwnerRec ? simpleUser(headOwnerRec, urls) : ownerJson
  return {
    url: `${api}/pulls/${p.number}`,
    id: p.id,
    node_id: nodeId('PullRequest', p.id),
    html_url: html,
    diff_url: `${html}.diff`,
    patch_url: `${html}.patch`,
    issue_url: `${api}/issues/${p.number}`,
    commits_url: `${api}/pulls/${p.number}/commits`,
    review_comments_url: `${api}/pulls/${p.number}/comments`,
    review_comment_url: `${api}/pulls/comments{/number}`,
    comments_url: `${api}/issues/${p.number}/comments`,
    statuses_url: `${api}/statuses/${p.head.sha}`,
    number: p.number,
    state: p.state,
    locked: false,
    title: p.title,
    user: userJson,
    body: p.body,
    labels: [],
    milestone: null,
    active_lock_reason: null,
    created_at: p.createdAt,
    updated_at: p.updatedAt,
    closed_at: p.closedAt ?? null,
    merged_at: p.mergedAt ?? null,
    merge_commit_sha: p.mergeCommitSha ?? null,
    assignee: null,
    assignees: [],
    requested_reviewers: [],
    requested_teams: [],
    head: {
      label: p.head.label,
      ref: p.head.ref,
      sha: p.head.sha,
      user: headOwnerJson,
      repo: repository(world, headRepo, urls, perm),
    },
    base: {
      label: `${r.owner}:${p.base.ref}`,
      ref: p.base.ref,
      sha: p.base.sha,
      user: ownerJson,
      repo: repository(world, r, urls, perm),
    },
    _links: {
      self: { href: `${api}/pulls/${p.number}` },
      html: { href: html },
      issue: { href: `${api}/issues/${p.number}` },
      comments: { href: `${api}/issues/${p.number}/comments` },
      review_comments: { href: `${api}/pulls/${p.number}/comments` },
      review_comment: { href: `${api}/pulls/comments{/number}` },
      commits: { href: `${api}/pulls/${p.number}/commits` },
      statuses: { href: `${api}/statuses/${p.head.sha}` },
    },
    author_association: authorAssociation(world, r, p.userLogin),
    auto_merge: null,
    draft: p.draft,
  }
}

export function pullRequest(
  world: World,
  r: RepoRecord,
  urls: Urls,
  p: PullRecord,
  perm: RepoPermission | null,
  stats: { commits: number; additions: number; deletions: number; files: number },
): Schemas['pull-request'] {
  return {
    ...pullFields(world, r, urls, p, perm),
    merged: Boolean(p.mergedAt),
    mergeable: p.state === 'open' ? true : null,
    rebaseable: p.state === 'open' ? true : null,
    mergeable_state: p.state === 'open' ? 'clean' : 'unknown',
    merged_by: p.mergedBy ? mergedBy(world, urls, p.mergedBy) : null,
    comments: 0,
    review_comments: 0,
    maintainer_can_modify: false,
    commits: stats.commits,
    additions: stats.additions,
    deletions: stats.deletions,
    changed_files: stats.files,
  }
}

function mergedBy(world: World, urls: Urls, login: string) {
  const u = world.user(login)
  return u ? simpleUser(u, urls) : simpleUser(placeholderUser(login), urls)
}

function authorAssociation(world: World, r: RepoRecord, login: string): Schemas['author-association'] {
  if (r.owner.toLowerCase() === login.toLowerCase()) return 'OWNER'
  const m = world.org(r.owner)?.members.get(login.toLowerCase())
  if (m?.state === 'active') return 'MEMBER'
  if (r.collaborators.has(login.toLowerCase())) return 'COLLABORATOR'
  return 'NONE'
}

export function orgSimple(org: OrgRecord, urls: Urls): Schemas['organization-simple'] {
  const api = `${urls.api}/orgs/${org.login}`
  return {
    login: org.login,
    id: org.id,
    node_id: nodeId('Organization', org.id),
    url: api,
    repos_url: `${api}/repos`,
    events_url: `${api}/events`,
    hooks_url: `${api}/hooks`,
    issues_url: `${api}/issues`,
    members_url: `${api}/members{/member}`,
    public_members_url: `${api}/public_members{/member}`,
    avatar_url: `https://avatars.githubusercontent.com/u/${org.id}?v=4`,
    description: org.description,
  }
}

export function orgFull(world: World, org: OrgRecord, urls: Urls): Schemas['organization-full'] {
  const publicRepos = publicRepoCount(world, org.login)
  return {
    ...orgSimple(org, urls),
    name: org.name,
    blog: '',
    twitter_username: null,
    is_verified: false,
    has_organization_projects: true,
    has_repository_projects: true,
    public_repos: publicRepos,
    public_gists: 0,
    followers: 0,
    following: 0,
    html_url: `${urls.web}/${org.login}`,
    type: 'Organization',
    created_at: org.createdAt,
    updated_at: org.createdAt,
    archived_at: null,
  }
}
