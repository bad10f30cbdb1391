import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { AppError } from '@portico/core'
import { createProject, isUniqueViolation, listProjects, listProjectsOfMember } from '@portico/db'
import type { FastifyInstance } from 'fastify'
import { errorResponses } from '../../../../../../schemas/common.js'
import { CreateProjectBody, Project, ProjectList } from '../../../../../../schemas/projects.js'
import { TenantParams } from '../../../../../../schemas/tenants.js'

/** A slug derived from a project name ("My App!" → "my-app"). */
export function slugify(name: string): string {
  let slug = name
    .normalize('NFKD')
    // The accents NFKD splits off ("Ü" → "U" + U+0308) go, rather than becoming dashes.
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
  if (!/^[a-z]/.test(slug)) slug = `p-${slug}`
  slug = slug.slice(0, 63).replace(/-+$/, '')
  return slug.length >= 2 ? slug : `${slug}-project`.replace(/^-/, 'p-')
}

/** `POST`/`GET /api/v1/tenants/{tenantId}/projects`. */
export default async function tenantProjectRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()

  fastify.post(
    '/',
    {
      preHandler: fastify.requireTenantRole('owner', 'admin'),
      schema: {
        summary: 'Create a project in the tenant',
        description:
          'Tenant owners and admins (others: 403 INSUFFICIENT_ROLE; a tenant the caller is not in: 404 TENANT_NOT_FOUND). Without `slug`, one is derived from the name ("My App!" → "my-app"); 409 PROJECT_SLUG_TAKEN when the tenant already has a project with that slug. The answer\'s `role` is the caller\'s effective role in the new project (owner for a tenant owner, admin for a tenant admin).',
        params: TenantParams,
        body: CreateProjectBody,
        response: { 201: Project, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const tenant = request.tenant!
      const slug = request.body.slug ?? slugify(request.body.name)
      try {
        const project = await createProject(fastify.db, tenant.id, { name: request.body.name, slug })
        return reply.code(201).send({ ...project, role: tenant.role === 'owner' ? 'owner' : 'admin' })
      } catch (err) {
        if (isUniqueViolation(err)) {
          throw new AppError(
            409,
            'PROJECT_SLUG_TAKEN',
            `This tenant already has a project with slug "${slug}".`,
          )
        }
        throw err
      }
    },
  )

  fastify.get(
    '/',
    {
      preHandler: fastify.requireTenantRole(),
      schema: {
        summary: "The tenant's projects the caller can see, each with the caller's role",
        description:
          'Any tenant member (a tenant the caller is not in: 404 TENANT_NOT_FOUND). Tenant owners and admins see every project of the tenant, with their tenant role; other members see only the projects they belong to, with their project role (none: an empty list).',
        params: TenantParams,
        response: { 200: ProjectList, ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => {
      const tenant = request.tenant!
      // Tenant owners and admins see every project; members see theirs.
      if (tenant.role === 'owner' || tenant.role === 'admin') {
        const role = tenant.role
        return { projects: (await listProjects(fastify.db, tenant.id)).map((p) => ({ ...p, role })) }
      }
      return { projects: await listProjectsOfMember(fastify.db, tenant.id, request.user!.id) }
    },
  )
}
