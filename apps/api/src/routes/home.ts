import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

const Home = Type.Object({
  name: Type.Literal('Portico'),
  user: Type.Union([
    Type.Object({ login: Type.String(), name: Type.Union([Type.String(), Type.Null()]) }),
    Type.Null(),
  ]),
  links: Type.Record(Type.String(), Type.String()),
})

/**
 * `GET /` when no frontend build is served (STATIC_DIR unset): a small page naming the product,
 * the signed-in user or a "Sign in with GitHub" link (sign-in returns here), and links to the
 * API description and Bull Board where they exist. JSON for clients that do not accept HTML.
 */
export default async function homeRoutes(app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  if (fastify.config.STATIC_DIR) return

  fastify.get(
    '/',
    {
      schema: {
        tags: ['home'],
        summary: 'Landing page',
        response: {
          200: Type.Union([Home, Type.String({ description: 'The HTML page (Accept: text/html)' })]),
        },
      },
    },
    async (request, reply) => {
      const user = request.user
      const links: Record<string, string> = {}
      if (!user) links.sign_in = '/auth/login'
      if (fastify.hasRoute({ method: 'GET', url: '/docs' })) links.api_description = '/docs'
      if (fastify.hasRoute({ method: 'GET', url: '/admin/queues' })) links.queues = '/admin/queues'
      links.health = '/health'
      const accept = String(request.headers.accept ?? '')
      if (!accept.includes('text/html')) {
        return { name: 'Portico' as const, user: user && { login: user.login, name: user.name }, links }
      }
      const who = user
        ? `<p class="user">${
            user.avatar_url ? `<img src="${escapeHtml(user.avatar_url)}" alt="" width="40" height="40"> ` : ''
          }Signed in as <strong>${escapeHtml(user.name ?? user.login)}</strong> (@${escapeHtml(user.login)})</p>
  <form method="post" action="/auth/logout"><button type="submit">Sign out</button></form>`
        : `<p><a class="sign-in" href="/auth/login">Sign in with GitHub</a></p>`
      const items = [
        links.api_description ? '<li><a href="/docs">API description</a></li>' : '',
        links.queues ? '<li><a href="/admin/queues">Queues (Bull Board, operators)</a></li>' : '',
        '<li><a href="/health">Health</a></li>',
      ].join('')
      return reply
        .type('text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        .header(
          'content-security-policy',
          "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; form-action 'self'",
        )
        .send(`<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Portico</title>
  <style>
    body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; padding: 0 1rem; color: #1f2328; }
    h1 { margin-bottom: 0.25rem; } .tagline { color: #59636e; margin-top: 0; }
    .sign-in { display: inline-block; padding: 0.5rem 1rem; background: #1f2328; color: #fff; border-radius: 6px; text-decoration: none; }
    .user img { border-radius: 50%; vertical-align: middle; }
  </style>
</head>
<body>
  <h1>Portico</h1>
  <p class="tagline">GitHub sign-in, pod deploys by pull request, repository connections.</p>
  ${who}
  <ul>${items}</ul>
</body>
</html>
`)
    },
  )
}
