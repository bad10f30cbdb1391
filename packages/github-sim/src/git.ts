import { spawn } from 'node:child_process'
import { inheritedEnv } from '@portico/core'

/** Fixed identity and environment so every git invocation is reproducible and ignores the host's config. */
export function gitEnv(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/bin:/bin',
    ...inheritedEnv(['PATH']),
    HOME: home,
    LANG: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: 'GitHub',
    GIT_AUTHOR_EMAIL: 'noreply@github.com',
    GIT_COMMITTER_NAME: 'GitHub',
    GIT_COMMITTER_EMAIL: 'noreply@github.com',
    ...extra,
  }
}

export class GitError extends Error {
  constructor(
    message: string,
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(message)
  }
}

export interface GitRunOptions {
  cwd: string
  home: string
  input?: string | Buffer
  env?: Record<string, string>
  /** Exit codes treated as success (default [0]). */
  okCodes?: number[]
}

/** Runs `git args…` without a shell and resolves with stdout as a Buffer. */
export function git(args: string[], opts: GitRunOptions): Promise<{ stdout: Buffer; code: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { cwd: opts.cwd, env: gitEnv(opts.home, opts.env) })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    child.on('error', reject)
    child.on('close', (code) => {
      const stderr = Buffer.concat(err).toString('utf8')
      if (code !== null && (opts.okCodes ?? [0]).includes(code)) {
        resolve({ stdout: Buffer.concat(out), code })
      } else {
        reject(new GitError(`git ${args[0]} failed (${code}): ${stderr.trim()}`, code, stderr))
      }
    })
    child.stdin.on('error', () => {})
    child.stdin.end(opts.input ?? '')
  })
}
