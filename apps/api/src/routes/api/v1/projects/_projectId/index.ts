import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { findProject } from '@portico/db'
import type { FastifyInstance } from 'fastify'
import { Project, ProjectParams } from '../../../../../schemas/projects.js'

/** `GET /api/v1/projects/{projectId}`: any member of the project. */
export default async function projectRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()

  fastify.get(
    '/',
    {
      preHandler: fastify.requireProjectRole(),
      schema: { params: ProjectParams, response: { 200: Project } },
    },
    async (request) => {
      const { tenant_id, id, role } = request.project!
      const project = await findProject(fastify.db, tenant_id, id)
      return { ...project!, role }
    },
  )
}
