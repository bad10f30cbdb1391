import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { AppError } from '@portico/core'
import { findProject } from '@portico/db'
import type { FastifyInstance } from 'fastify'
import { errorResponses } from '../../../../../schemas/common.js'
import { Project, ProjectParams } from '../../../../../schemas/projects.js'

/** `GET /api/v1/projects/{projectId}`: any member of the project. */
export default async function projectRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()

  fastify.get(
    '/',
    {
      preHandler: fastify.requireProjectRole(),
      schema: {
        summary: "One project, with the caller's role in it",
        description:
          "Any member of the project; tenant owners and admins count as its owner and admin, and `role` is that effective role. A project that does not exist or that the caller cannot see (another tenant's, or not a member) is 404 PROJECT_NOT_FOUND alike.",
        params: ProjectParams,
        response: { 200: Project, ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => {
      const { tenant_id, id, role } = request.project!
      const project = await findProject(fastify.db, tenant_id, id)
      // Access may come from the read cache: a project deleted since is gone, not a 500.
      if (!project) throw new AppError(404, 'PROJECT_NOT_FOUND', 'Project not found.')
      return { ...project, role }
    },
  )
}
