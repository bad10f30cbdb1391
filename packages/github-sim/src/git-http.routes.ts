import { spawn } from 'node:child_process'
import { PassThrough, type Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { effectivePermission } from './access.js'
import { lookupToken, tokenFromAuthorization } from './api.js'
import type { SimContext } from './context.js'
import { gitEnv } from './git.js'

type P = Record<string, string>

/** Git smart HTTP (clone/fetch only) through `git http-backend`, authenticated like github.com. */
export function registerGitHttpRoutes(
  app: FastifyInstance,
  ctx: SimContext,
  reposRoot: string,
  home: string,
): void {
  const passthrough = (
    _req: FastifyRequest,
    payload: Readable,
    done: (err: Error | null, body?: unknown) => void,
  ) => done(null, payload)
  app.addContentTypeParser('application/x-git-upload-pack-request', passthrough)
  app.addContentTypeParser('application/x-git-receive-pack-request', passthrough)

  const text = (reply: FastifyReply, status: number, body: string, headers: Record<string, string> = {}) =>
    reply.code(status).headers(headers).type('text/plain; charset=utf-8').send(body)

  const handle = async (
    req: FastifyRequest,
    reply: FastifyReply,
    service: 'info/refs' | 'git-upload-pack' | 'git-receive-pack',
  ) => {
    const { owner = '', repo: rawName = '' } = req.params as P
    const name = rawName.replace(/\.git$/, '')
    const challenge = { 'www-authenticate': 'Basic realm="GitHub"' }
    const token = tokenFromAuthorization(req.headers.authorization)
    if (token !== undefined) {
      const rec = token ? lookupToken(ctx, token) : null
      if (!rec)
        return text(
          reply,
          401,
          'Invalid username or token. Password authentication is not supported for Git operations.\n',
          challenge,
        )
      req.sim.token = rec
      req.sim.login = rec.login
    }
    const repo = ctx.world.repo(owner, name)
    const perm = repo ? effectivePermission(ctx, req, repo) : null
    if (!repo || !perm) {
      // Anonymous callers are asked for credentials so private repositories are not revealed.
      if (!req.sim.login) return text(reply, 401, 'Authentication required\n', challenge)
      return text(reply, 404, 'Repository not found.\n')
    }
    const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : ''
    const wantsPush =
      service === 'git-receive-pack' || new URLSearchParams(query).get('service') === 'git-receive-pack'
    if (wantsPush) {
      return text(
        reply,
        403,
        `Permission to ${repo.owner}/${repo.name}.git denied to ${req.sim.login ?? 'anonymous'}: this simulator serves clone/fetch only.\n`,
      )
    }
    const env = gitEnv(home, {
      GIT_PROJECT_ROOT: reposRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: `/${repo.owner}/${repo.name}.git/${service}`,
      QUERY_STRING: query,
      REQUEST_METHOD: req.method,
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_USER: req.sim.login ?? '',
      REMOTE_ADDR: req.ip,
      SERVER_PROTOCOL: 'HTTP/1.1',
      GATEWAY_INTERFACE: 'CGI/1.1',
    })
    const encoding = req.headers['content-encoding']
    if (encoding) env.HTTP_CONTENT_ENCODING = encoding
    const proto = req.headers['git-protocol']
    if (typeof proto === 'string') env.HTTP_GIT_PROTOCOL = proto
    if (req.headers['content-length']) env.CONTENT_LENGTH = String(req.headers['content-length'])

    const child = spawn('git', ['http-backend'], { env })
    const body = req.body as Readable | undefined
    if (req.method === 'POST' && body && typeof body.pipe === 'function') body.pipe(child.stdin)
    else child.stdin.end()
    child.stdin.on('error', () => {})
    const stderr: Buffer[] = []
    child.stderr.on('data', (d: Buffer) => stderr.push(d))

    return new Promise<FastifyReply>((resolve) => {
      let head = Buffer.alloc(0)
      let done = false
      const out = new PassThrough()
      const onData = (chunk: Buffer) => {
        if (done) {
          out.write(chunk)
          return
        }
        head = Buffer.concat([head, chunk])
        let sep = head.indexOf('\r\n\r\n')
        let sepLen = 4
        if (sep === -1) {
          sep = head.indexOf('\n\n')
          sepLen = 2
        }
        if (sep === -1) return
        done = true
        let status = 200
        for (const line of head.subarray(0, sep).toString('latin1').split(/\r?\n/)) {
          const colon = line.indexOf(':')
          if (colon === -1) continue
          const key = line.slice(0, colon).trim().toLowerCase()
          const value = line.slice(colon + 1).trim()
          if (key === 'status') status = Number.parseInt(value, 10) || 200
          else reply.header(key, value)
        }
        const rest = head.subarray(sep + sepLen)
        if (rest.length) out.write(rest)
        reply.code(status)
        resolve(reply.send(out))
      }
      child.stdout.on('data', onData)
      child.on('close', (code) => {
        if (!done) {
          const msg = Buffer.concat(stderr).toString('utf8')
          ctx.warn(`git http-backend failed (${code}) for ${req.method} ${req.url}: ${msg.trim()}`)
          resolve(text(reply, 500, 'git http-backend failed\n'))
          return
        }
        out.end()
      })
      child.on('error', (err) => {
        if (!done) resolve(text(reply, 500, `cannot run git http-backend: ${err.message}\n`))
      })
    })
  }

  app.get(
    '/:owner/:repo/info/refs',
    { config: { route: 'GET /{owner}/{repo}.git/info/refs' } },
    (req, reply) => handle(req, reply, 'info/refs'),
  )
  app.post(
    '/:owner/:repo/git-upload-pack',
    { config: { route: 'POST /{owner}/{repo}.git/git-upload-pack' } },
    (req, reply) => handle(req, reply, 'git-upload-pack'),
  )
  app.post(
    '/:owner/:repo/git-receive-pack',
    { config: { route: 'POST /{owner}/{repo}.git/git-receive-pack' } },
    (req, reply) => handle(req, reply, 'git-receive-pack'),
  )
}
