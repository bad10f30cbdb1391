import { readdir, rm } from 'node:fs/promises'
import path from 'node:path'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Whether a string is a canonical UUID (the only thing clone paths are built from). */
export const isUuid = (value: string): boolean => UUID.test(value)

/**
 * `{cloneRoot}/tenants/{tenantId}/repos/{connectionId}`, built from server-side ids only.
 * @throws {Error} when an id is not a UUID or the result would leave `cloneRoot`.
 */
export function clonePath(cloneRoot: string, tenantId: string, connectionId: string): string {
  if (!isUuid(tenantId) || !isUuid(connectionId)) throw new Error('clone path ids must be UUIDs')
  const root = path.resolve(cloneRoot)
  const dir = path.resolve(root, 'tenants', tenantId.toLowerCase(), 'repos', connectionId.toLowerCase())
  assertInside(root, dir)
  return dir
}

/** Folder holding one tenant's clones. */
export function tenantReposPath(cloneRoot: string, tenantId: string): string {
  if (!isUuid(tenantId)) throw new Error('tenant id must be a UUID')
  return path.resolve(cloneRoot, 'tenants', tenantId.toLowerCase(), 'repos')
}

/** Throws unless `target` is strictly below `root`. */
export function assertInside(root: string, target: string): void {
  const rel = path.relative(path.resolve(root), path.resolve(target))
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new Error('path escapes the clone root')
  }
}

// Retries cover a directory something (an orphaned git) is still writing into.
const RM_OPTIONS = { recursive: true, force: true, maxRetries: 3, retryDelay: 100 } as const

/** Removes `dest` and any partial clone directories an earlier (crashed) attempt left beside it. */
export async function removeClone(dest: string): Promise<void> {
  const parent = path.dirname(dest)
  const prefix = `${path.basename(dest)}.partial-`
  const names = await readdir(parent).catch(() => [] as string[])
  await Promise.all(
    names.filter((n) => n.startsWith(prefix)).map((n) => rm(path.join(parent, n), RM_OPTIONS)),
  )
  await rm(dest, RM_OPTIONS)
}
