import { constants } from 'node:fs'
import { type FileHandle, open, opendir } from 'node:fs/promises'
import path from 'node:path'
import type { AnalysisSummary } from '@portico/db'
import { detectComponent, detectRoutes, isSourceFile } from './detectors.js'

/** Bounds on how much of a repository the analyser reads. */
export interface AnalysisLimits {
  maxFiles: number
  maxFileBytes: number
  maxTotalBytes: number
  maxDepth: number
  /** Entries kept in the summary's `routes`/`components` lists (counts stay exact). */
  maxListed: number
  /**
   * Wall-clock deadline (ms since the epoch) checked between files: past it the walk stops and
   * the summary says `timed_out` (and `truncated`). Undefined: no deadline.
   */
  deadline?: number
}

export const DEFAULT_ANALYSIS_LIMITS: AnalysisLimits = {
  maxFiles: 20_000,
  maxFileBytes: 512 * 1024,
  maxTotalBytes: 64 * 1024 * 1024,
  maxDepth: 32,
  maxListed: 2_000,
}

/** The analysis of one clone: the stored summary and its three counts. */
export interface AnalysisResult {
  summary: AnalysisSummary
  routesCount: number
  componentsCount: number
  endpointsCount: number
}

// Dependencies, vendored code, build output and tool caches: not the project's own source.
const SKIPPED_DIRS = new Set([
  'node_modules',
  'bower_components',
  'jspm_packages',
  'vendor',
  'vendors',
  'third_party',
  'third-party',
  'dist',
  'build',
  'out',
  'target',
  'coverage',
  '__pycache__',
  'venv',
  'env',
  'site-packages',
  'bin',
  'obj',
])

/**
 * Walks a clone and finds routes (FastAPI, Flask, Express, Fastify, NestJS, Spring Boot) and
 * React components. Never follows symbolic links (the walk skips them and files are opened with
 * O_NOFOLLOW), skips hidden, dependency, vendored and build folders, and stops reading at the
 * limits (`summary.truncated` says so; `summary.timed_out` too when the deadline ended it).
 * `endpoints` counts distinct `METHOD path` pairs. Runs on the calling thread: the worker runs it
 * through {@link analyzeInThread} so a slow file can never block the event loop.
 */
export async function analyzeRepository(
  root: string,
  limits: AnalysisLimits = DEFAULT_ANALYSIS_LIMITS,
): Promise<AnalysisResult> {
  const routes: AnalysisSummary['routes'] = []
  const components: AnalysisSummary['components'] = []
  const frameworks = new Set<string>()
  const endpoints = new Set<string>()
  let routesCount = 0
  let componentsCount = 0
  let filesScanned = 0
  let bytesRead = 0
  let truncated = false
  let timedOut = false

  const files = walk(root, limits.maxDepth)
  for await (const rel of files) {
    if (filesScanned >= limits.maxFiles || bytesRead >= limits.maxTotalBytes) {
      truncated = true
      break
    }
    if (limits.deadline !== undefined && Date.now() >= limits.deadline) {
      truncated = true
      timedOut = true
      break
    }
    const source = await readBounded(path.join(root, rel), limits.maxFileBytes)
    if (source === undefined) continue
    filesScanned += 1
    bytesRead += Buffer.byteLength(source)
    for (const route of detectRoutes(rel, source)) {
      frameworks.add(route.framework)
      endpoints.add(`${route.method} ${route.path}`)
      routesCount += 1
      if (routes.length < limits.maxListed) routes.push({ method: route.method, path: route.path, file: rel })
    }
    const component = detectComponent(rel, source)
    if (component) {
      frameworks.add(component.framework)
      componentsCount += 1
      if (components.length < limits.maxListed) components.push({ name: component.name, file: rel })
    }
  }
  return {
    summary: {
      frameworks: [...frameworks].sort(),
      routes,
      components,
      endpoints: endpoints.size,
      files_scanned: filesScanned,
      truncated,
      timed_out: timedOut,
    },
    routesCount,
    componentsCount,
    endpointsCount: endpoints.size,
  }
}

/** Source files under `root` as sorted, `/`-separated relative paths; symlinks are never entered. */
async function* walk(root: string, maxDepth: number): AsyncGenerator<string> {
  const queue: { dir: string; depth: number }[] = [{ dir: '', depth: 0 }]
  while (queue.length > 0) {
    const { dir, depth } = queue.shift() as { dir: string; depth: number }
    let entries: { name: string; isDir: boolean; isFile: boolean }[] = []
    try {
      const handle = await opendir(path.join(root, dir))
      for await (const e of handle) entries.push({ name: e.name, isDir: e.isDirectory(), isFile: e.isFile() })
    } catch {
      continue
    }
    entries = entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const e of entries) {
      const rel = dir === '' ? e.name : `${dir}/${e.name}`
      // Dirent types come from lstat semantics: a symlink is neither a file nor a directory here.
      if (e.isDir) {
        if (depth < maxDepth && !e.name.startsWith('.') && !SKIPPED_DIRS.has(e.name)) {
          queue.push({ dir: rel, depth: depth + 1 })
        }
      } else if (e.isFile && isSourceFile(e.name)) {
        yield rel
      }
    }
  }
}

/** A regular file's text, or undefined when it is larger than `maxBytes` or not a regular file. */
async function readBounded(file: string, maxBytes: number): Promise<string | undefined> {
  let handle: FileHandle | undefined
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW)
    const stat = await handle.stat()
    if (!stat.isFile() || stat.size > maxBytes) return undefined
    const buffer = Buffer.alloc(stat.size)
    const { bytesRead } = await handle.read(buffer, 0, stat.size, 0)
    return buffer.subarray(0, bytesRead).toString('utf8')
  } catch {
    return undefined
  } finally {
    await handle?.close()
  }
}
