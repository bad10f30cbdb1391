import type { Executor } from './db.js'
import type { TenantRole, TenantRow } from './schema.js'

/** A tenant seen by one of its members. */
export type TenantWithRole = TenantRow & { role: TenantRole }

/** The application's clock: every timestamp column is written with it (one clock source). */
const now = () => new Date()

/** Creates a tenant and makes `ownerId` its owner, atomically. */
export async function createTenantWithOwner(
  db: Executor,
  tenant: { slug: string; name: string },
  ownerId: string,
): Promise<TenantWithRole> {
  const run = async (trx: Executor) => {
    const row = await trx
      .insertInto('tenants')
      .values({ slug: tenant.slug, name: tenant.name })
      .returningAll()
      .executeTakeFirstOrThrow()
    await trx
      .insertInto('tenant_members')
      .values({ tenant_id: row.id, user_id: ownerId, role: 'owner' })
      .execute()
    return { ...row, role: 'owner' as const }
  }
  return db.isTransaction ? run(db) : db.transaction().execute(run)
}

/** The tenants a user belongs to, with their role, oldest first. */
export async function listTenantsForUser(db: Executor, userId: string): Promise<TenantWithRole[]> {
  return db
    .selectFrom('tenants')
    .innerJoin('tenant_members as m', 'm.tenant_id', 'tenants.id')
    .selectAll('tenants')
    .select('m.role')
    .where('m.user_id', '=', userId)
    .orderBy('tenants.created_at')
    .orderBy('tenants.id')
    .execute()
}

/** A tenant with the user's role in it; undefined when absent or the user is not a member. */
export async function findTenantForUser(
  db: Executor,
  tenantId: string,
  userId: string,
): Promise<TenantWithRole | undefined> {
  return db
    .selectFrom('tenants')
    .innerJoin('tenant_members as m', 'm.tenant_id', 'tenants.id')
    .selectAll('tenants')
    .select('m.role')
    .where('tenants.id', '=', tenantId)
    .where('m.user_id', '=', userId)
    .executeTakeFirst()
}

/**
 * Locks a tenant's row until `trx` ends, so that changes to its membership take turns. False
 * when there is no such tenant.
 */
export async function lockTenant(trx: Executor, tenantId: string): Promise<boolean> {
  const row = await trx
    .selectFrom('tenants')
    .select('id')
    .where('id', '=', tenantId)
    .forUpdate()
    .executeTakeFirst()
  return row !== undefined
}

/**
 * These users' roles in a tenant, their rows locked until `trx` ends (`FOR UPDATE`): the roles
 * as last committed, even when another transaction changed them while this one waited.
 */
export async function lockTenantRoles(
  trx: Executor,
  tenantId: string,
  userIds: readonly string[],
): Promise<Map<string, TenantRole>> {
  const rows = await trx
    .selectFrom('tenant_members')
    .select(['user_id', 'role'])
    .where('tenant_id', '=', tenantId)
    .where('user_id', 'in', [...userIds])
    .orderBy('user_id')
    .forUpdate()
    .execute()
  return new Map(rows.map((r) => [r.user_id, r.role]))
}

/** Adds a user to a tenant or changes their role. */
export async function setTenantMember(
  db: Executor,
  tenantId: string,
  userId: string,
  role: TenantRole,
): Promise<void> {
  await db
    .insertInto('tenant_members')
    .values({ tenant_id: tenantId, user_id: userId, role })
    .onConflict((oc) => oc.columns(['tenant_id', 'user_id']).doUpdateSet({ role, updated_at: now() }))
    .execute()
}

/** How many owners a tenant has. */
export async function countTenantOwners(db: Executor, tenantId: string): Promise<number> {
  const row = await db
    .selectFrom('tenant_members')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('tenant_id', '=', tenantId)
    .where('role', '=', 'owner')
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

/** Outcome of {@link changeTenantRole}. */
export type TenantRoleChange = 'changed' | 'last-owner'

/**
 * Sets a user's tenant role, refusing (`'last-owner'`) to demote the tenant's only owner. One
 * transaction locks the tenant's owner rows (`SELECT … FOR UPDATE`) before counting them, so
 * concurrent demotions are serialised: the second one re-reads the owners after the first
 * commits and sees it is now demoting the last one.
 */
export async function changeTenantRole(
  db: Executor,
  tenantId: string,
  userId: string,
  role: TenantRole,
): Promise<TenantRoleChange> {
  const run = async (trx: Executor): Promise<TenantRoleChange> => {
    const owners = await trx
      .selectFrom('tenant_members')
      .select('user_id')
      .where('tenant_id', '=', tenantId)
      .where('role', '=', 'owner')
      .forUpdate()
      .execute()
    const demotesAnOwner = role !== 'owner' && owners.some((o) => o.user_id === userId)
    if (demotesAnOwner && owners.length <= 1) return 'last-owner'
    await setTenantMember(trx, tenantId, userId, role)
    return 'changed'
  }
  return db.isTransaction ? run(db) : db.transaction().execute(run)
}
