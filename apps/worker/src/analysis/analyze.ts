import { constants } from 'node:fs'
import { type FileHandle, open, readdir } from 'node:fs/promises'
import path from 'node:path'
import { mapLimit } from '@portico/core/map-limit'
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

/**
 * Folders listed, and files read, at a time: a serial walk waits out one thread-pool round trip
 * per folder and per file (about 0.5 s for 2,000 folders). At most this many files past a limit
 * are read and discarded.
 */
const IO_CONCURRENCY = 16

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

  const pastDeadline = () => limits.deadline !== undefined && Date.now() >= limits.deadline
  let dirs = ['']
  walk: for (let depth = 0; dirs.length > 0; depth++) {
    if (pastDeadline()) {
      truncated = true
      timedOut = true
      break
    }
    const level = await listLevel(root, dirs, depth < limits.maxDepth)
    dirs = level.subdirs
    // Read a batch at a time, then take the files in order, so the limits and the deadline cut
    // the walk at the same file as a one-by-one read would.
    for (let start = 0; start < level.files.length; start += IO_CONCURRENCY) {
      const batch = level.files.slice(start, start + IO_CONCURRENCY)
      const sources =
        filesScanned >= limits.maxFiles || bytesRead >= limits.maxTotalBytes || pastDeadline()
          ? []
          : await mapLimit(batch, IO_CONCURRENCY, (rel) =>
              readBounded(path.join(root, rel), limits.maxFileBytes),
            )
      for (const [i, rel] of batch.entries()) {
        if (filesScanned >= limits.maxFiles || bytesRead >= limits.maxTotalBytes) {
          truncated = true
          break walk
        }
        if (pastDeadline()) {
          truncated = true
          timedOut = true
          break walk
        }
        const source = sources[i]
        if (source === undefined) continue
        filesScanned += 1
        bytesRead += Buffer.byteLength(source)
        for (const route of detectRoutes(rel, source)) {
          frameworks.add(route.framework)
          endpoints.add(`${route.method} ${route.path}`)
          routesCount += 1
          if (routes.length < limits.maxListed)
            routes.push({ method: route.method, path: route.path, file: rel })
        }
        const component = detectComponent(rel, source)
        if (component) {
          frameworks.add(component.framework)
          componentsCount += 1
          if (components.length < limits.maxListed) components.push({ name: component.name, file: rel })
        }
      }
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

/**
 * One breadth-first level of the walk: the source files and the folders to descend into (when
 * `descend`) of `dirs`, as `/`-separated paths relative to `root`, each folder's entries sorted
 * by name and folders kept in order. Symlinks are never entered; unreadable folders are empty.
 */
async function listLevel(
  root: string,
  dirs: string[],
  descend: boolean,
): Promise<{ files: string[]; subdirs: string[] }> {
  const listed = await mapLimit(dirs, IO_CONCURRENCY, async (dir) => {
    const entries = await readdir(path.join(root, dir), { withFileTypes: true }).catch(() => [])
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    const subdirs: string[] = []
    const files: string[] = []
    for (const e of entries) {
      const rel = dir === '' ? e.name : `${dir}/${e.name}`
      // Dirent types come from lstat semantics: a symlink is neither a file nor a directory here.
      if (e.isDirectory()) {
        if (descend && !e.name.startsWith('.') && !SKIPPED_DIRS.has(e.name)) subdirs.push(rel)
      } else if (e.isFile() && isSourceFile(e.name)) {
        files.push(rel)
      }
    }
    return { subdirs, files }
  })
  return { files: listed.flatMap((l) => l.files), subdirs: listed.flatMap((l) => l.subdirs) }
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
