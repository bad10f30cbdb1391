import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { AppError } from '@portico/core'
import { createTenantWithOwner, isUniqueViolation, listTenantsForUser } from '@portico/db'
import type { FastifyInstance } from 'fastify'
import { errorResponses } from '../../../../schemas/common.js'
import { CreateTenantBody, Tenant, TenantList } from '../../../../schemas/tenants.js'

/** `POST /api/v1/tenants` (the creator becomes owner) and `GET /api/v1/tenants` (mine). */
export default async function tenantRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()

  fastify.post(
    '/',
    {
      preHandler: fastify.requireUser,
      schema: {
        summary: 'Create a tenant; the caller becomes its owner',
        description:
          'Any signed-in user. The slug is unique across Portico: 409 TENANT_SLUG_TAKEN when it is in use.',
        body: CreateTenantBody,
        response: { 201: Tenant, ...errorResponses(400, 401, 403, 409) },
      },
    },
    async (request, reply) => {
      try {
        const tenant = await createTenantWithOwner(fastify.db, request.body, request.user!.id)
        return reply.code(201).send(tenant)
      } catch (err) {
        if (isUniqueViolation(err)) {
          throw new AppError(
            409,
            'TENANT_SLUG_TAKEN',
            `A tenant with slug "${request.body.slug}" already exists.`,
          )
        }
        throw err
      }
    },
  )

  fastify.get(
    '/',
    {
      preHandler: fastify.requireUser,
      schema: {
        summary: "The caller's tenants, each with the caller's role in it",
        response: { 200: TenantList, ...errorResponses(401) },
      },
    },
    async (request) => ({ tenants: await listTenantsForUser(fastify.db, request.user!.id) }),
  )
}
