import { Type } from '@sinclair/typebox'
import { Timestamp } from './common.js'
import { Name, Slug, Text } from './text.js'

export const TenantRoleSchema = Type.Union([
  Type.Literal('owner'),
  Type.Literal('admin'),
  Type.Literal('member'),
])

export const TenantParams = Type.Object({ tenantId: Text({ maxLength: 64 }) })
export const TenantMemberParams = Type.Object({
  tenantId: Text({ maxLength: 64 }),
  login: Text({ minLength: 1, maxLength: 39 }),
})

export const CreateTenantBody = Type.Object({ slug: Slug(), name: Name() }, { additionalProperties: false })

export const SetTenantMemberBody = Type.Object({ role: TenantRoleSchema }, { additionalProperties: false })

export const Tenant = Type.Object({
  id: Type.String(),
  slug: Type.String(),
  name: Type.String(),
  role: TenantRoleSchema,
  created_at: Timestamp,
})

export const TenantList = Type.Object({ tenants: Type.Array(Tenant) })

export const TenantMember = Type.Object({ login: Type.String(), role: TenantRoleSchema })
