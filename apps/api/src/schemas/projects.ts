import { PROJECT_ROLES } from '@portico/db'
import { Type } from '@sinclair/typebox'
import { Timestamp } from './common.js'
import { Name, Slug, Text } from './text.js'

export const ProjectRoleSchema = Type.Union(PROJECT_ROLES.map((r) => Type.Literal(r)))

export const ProjectParams = Type.Object({ projectId: Text({ maxLength: 64 }) })
export const ProjectMemberParams = Type.Object({
  projectId: Text({ maxLength: 64 }),
  login: Text({ minLength: 1, maxLength: 39 }),
})

export const CreateProjectBody = Type.Object(
  {
    name: Name(),
    slug: Type.Optional(
      Slug({
        description:
          'Lower-case letters, digits and dashes; 2-63 characters, starting with a letter. Defaults to one derived from the name.',
      }),
    ),
  },
  { additionalProperties: false },
)

export const SetProjectMemberBody = Type.Object({ role: ProjectRoleSchema }, { additionalProperties: false })

export const Project = Type.Object({
  id: Type.String(),
  tenant_id: Type.String(),
  name: Type.String(),
  slug: Type.String(),
  role: Type.Optional(ProjectRoleSchema),
  created_at: Timestamp,
})

export const ProjectList = Type.Object({ projects: Type.Array(Project) })

export const ProjectMember = Type.Object({
  login: Type.String(),
  name: Type.Union([Type.String(), Type.Null()]),
  avatar_url: Type.Union([Type.String(), Type.Null()]),
  role: ProjectRoleSchema,
})

export const ProjectMemberList = Type.Object({ members: Type.Array(ProjectMember) })
