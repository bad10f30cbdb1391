/** A route found in one source file. */
export interface FoundRoute {
  framework: string
  method: string
  path: string
}

/** A UI component found in one source file. */
export interface FoundComponent {
  framework: string
  name: string
}

const JS_EXT = /\.(?:[cm]?js|[cm]?ts|jsx|tsx)$/
const PY_EXT = /\.py$/
const JVM_EXT = /\.(?:java|kt)$/
const COMPONENT_EXT = /\.(?:jsx|tsx)$/
const TEST_FILE = /\.(?:test|spec|stories|story)\.[cm]?[jt]sx?$/

const HTTP_METHODS = 'get|post|put|patch|delete|options|head|all'
const STRING = String.raw`(['"\`])([^'"\`\n]*)`

/** Joins path segments into one `/`-rooted path without duplicate slashes. */
export function joinPaths(...parts: (string | undefined)[]): string {
  const segments = parts
    .filter((p): p is string => p !== undefined && p !== '')
    .flatMap((p) => p.split('/'))
    .filter((s) => s !== '')
  return `/${segments.join('/')}`
}

const EXPRESS_IMPORT = /(?:from\s+['"]express['"]|require\(\s*['"]express['"]\s*\))/
const FASTIFY_IMPORT = /(?:from\s+['"]fastify['"]|require\(\s*['"]fastify['"]\s*\))/
const NEST_IMPORT = /['"]@nestjs\/common['"]/
const CALL_ROUTE = new RegExp(String.raw`\b([A-Za-z_$][\w$]*)\.(${HTTP_METHODS})\(\s*${STRING}\3`, 'g')
const FASTIFY_ROUTE_OBJECT = /\.route\(\s*\{([^{}]*)\}/g
const NEST_DECORATOR = new RegExp(
  String.raw`@(Controller|Get|Post|Put|Patch|Delete|Options|Head|All)\(\s*(?:\{\s*path\s*:\s*)?(?:\[\s*)?(?:${STRING}\2)?`,
  'g',
)
// Receivers that are routers or applications, not HTTP clients (axios.get, http.get, api.get…).
const EXPRESS_RECEIVER = /^(?:app|router|[a-z][\w$]*(?:Router|App))$/
const FASTIFY_RECEIVER = /^(?:fastify|app|server|instance|[a-z][\w$]*(?:Router|App|Server))$/

function jsRoutes(source: string): FoundRoute[] {
  const routes: FoundRoute[] = []
  if (NEST_IMPORT.test(source)) {
    let prefix: string | undefined
    for (const m of source.matchAll(NEST_DECORATOR)) {
      const [, decorator = '', , value] = m
      if (decorator === 'Controller') prefix = value
      else
        routes.push({ framework: 'NestJS', method: decorator.toUpperCase(), path: joinPaths(prefix, value) })
    }
    return routes
  }
  const express = EXPRESS_IMPORT.test(source)
  const fastify = FASTIFY_IMPORT.test(source)
  for (const m of source.matchAll(CALL_ROUTE)) {
    const [, receiver = '', method = '', , path = ''] = m
    if (!path.startsWith('/')) continue
    const isFastify = receiver === 'fastify' || (fastify && !express && FASTIFY_RECEIVER.test(receiver))
    if (isFastify) routes.push({ framework: 'Fastify', method: method.toUpperCase(), path })
    else if (EXPRESS_RECEIVER.test(receiver))
      routes.push({ framework: 'Express', method: method.toUpperCase(), path })
  }
  if (fastify) {
    for (const m of source.matchAll(FASTIFY_ROUTE_OBJECT)) {
      const body = m[1] ?? ''
      const url = /\burl\s*:\s*(['"`])(\/[^'"`\n]*)\1/.exec(body)?.[2]
      const methods = /\bmethod\s*:\s*(\[[^\]]*\]|['"`]\w+['"`])/.exec(body)?.[1]
      if (url === undefined || methods === undefined) continue
      for (const method of methods.match(/\w+/g) ?? []) {
        routes.push({ framework: 'Fastify', method: method.toUpperCase(), path: url })
      }
    }
  }
  return routes
}

const FLASK_IMPORT = /^\s*(?:from\s+flask\b|import\s+flask\b)/m
const FASTAPI_IMPORT = /^\s*(?:from\s+fastapi\b|import\s+fastapi\b)/m
const PY_PREFIX = /^\s*(\w+)\s*=\s*(?:APIRouter|Blueprint)\(([^)]*)\)/gm
const PY_ROUTE_DECORATOR = /@(\w+)\.route\(\s*(['"])([^'"\n]*)\2([^)]*)\)/g
const PY_METHOD_DECORATOR = /@(\w+)\.(get|post|put|patch|delete|options|head)\(\s*(['"])([^'"\n]*)\3/g

function pythonRoutes(source: string): FoundRoute[] {
  const flask = FLASK_IMPORT.test(source)
  const fastapi = FASTAPI_IMPORT.test(source)
  if (!flask && !fastapi) return []
  const prefixes = new Map<string, string>()
  for (const m of source.matchAll(PY_PREFIX)) {
    const prefix = /\b(?:prefix|url_prefix)\s*=\s*(['"])([^'"\n]*)\1/.exec(m[2] ?? '')?.[2]
    if (prefix !== undefined) prefixes.set(m[1] ?? '', prefix)
  }
  const routes: FoundRoute[] = []
  if (flask) {
    for (const m of source.matchAll(PY_ROUTE_DECORATOR)) {
      const [, receiver = '', , path = '', rest = ''] = m
      const list = /methods\s*=\s*[[(]([^\])]*)/.exec(rest)?.[1]
      const methods = list ? (list.match(/[A-Za-z]+/g) ?? ['GET']) : ['GET']
      for (const method of methods) {
        routes.push({
          framework: 'Flask',
          method: method.toUpperCase(),
          path: joinPaths(prefixes.get(receiver), path),
        })
      }
    }
  }
  for (const m of source.matchAll(PY_METHOD_DECORATOR)) {
    const [, receiver = '', method = '', , path = ''] = m
    routes.push({
      framework: fastapi ? 'FastAPI' : 'Flask',
      method: method.toUpperCase(),
      path: joinPaths(prefixes.get(receiver), path),
    })
  }
  return routes
}

const SPRING_CONTROLLER = /@(?:RestController|Controller)\b/
const SPRING_MAPPING = /@(Get|Post|Put|Patch|Delete|Request)Mapping\b(?:\s*\(([^)]*)\))?/g
const CLASS_DECLARATION = /\bclass\s+\w+/

/** First path of a mapping's arguments: `"/x"`, `value = "/x"`, `path = {"/x", …}`. */
function mappingPath(args: string | undefined): string | undefined {
  if (args === undefined) return undefined
  const named = /\b(?:value|path)\s*=\s*\{?\s*"([^"\n]*)"/.exec(args)
  if (named) return named[1]
  const bare = /^\s*\{?\s*"([^"\n]*)"/.exec(args)
  return bare?.[1]
}

function springRoutes(source: string): FoundRoute[] {
  if (!SPRING_CONTROLLER.test(source)) return []
  const classAt = CLASS_DECLARATION.exec(source)?.index ?? 0
  let prefix: string | undefined
  const routes: FoundRoute[] = []
  for (const m of source.matchAll(SPRING_MAPPING)) {
    const [, kind = '', args] = m
    if ((m.index ?? 0) < classAt) {
      if (kind === 'Request') prefix = mappingPath(args)
      continue
    }
    const methods =
      kind === 'Request'
        ? (args?.match(/RequestMethod\.(\w+)/g) ?? ['ALL']).map((s) => s.replace(/^RequestMethod\./, ''))
        : [kind]
    for (const method of methods) {
      routes.push({
        framework: 'Spring Boot',
        method: method.toUpperCase(),
        path: joinPaths(prefix, mappingPath(args)),
      })
    }
  }
  return routes
}

/** Routes declared in one file, by its extension and content. */
export function detectRoutes(file: string, source: string): FoundRoute[] {
  if (JS_EXT.test(file)) return jsRoutes(source)
  if (PY_EXT.test(file)) return pythonRoutes(source)
  if (JVM_EXT.test(file)) return springRoutes(source)
  return []
}

const COMPONENT_NAME = /^[A-Z][A-Za-z0-9]*$/
// `export default function Name(`, `export default class Name`, or `export default Name` alone.
const DEFAULT_EXPORT =
  /export\s+default\s+(?:(?:async\s+)?function\s*\*?\s*([A-Z][A-Za-z0-9]*)\s*\(|class\s+([A-Z][A-Za-z0-9]*)\b|([A-Z][A-Za-z0-9]*)\s*;?\s*$)/m
const LOOKS_LIKE_REACT = /from\s+['"]react['"]|require\(\s*['"]react['"]\s*\)|<\/|\/>/

/**
 * The React component a file defines: a capitalised `.tsx`/`.jsx` file, or a default-exported
 * capitalised function or class (in `.js` files only when the file looks like React).
 */
export function detectComponent(file: string, source: string): FoundComponent | undefined {
  if (TEST_FILE.test(file)) return undefined
  const base = file.slice(file.lastIndexOf('/') + 1).replace(/\.[^.]+$/, '')
  const isComponentFile = COMPONENT_EXT.test(file)
  if (isComponentFile && COMPONENT_NAME.test(base)) return { framework: 'React', name: base }
  if (!isComponentFile && !(/\.[cm]?js$/.test(file) && LOOKS_LIKE_REACT.test(source))) return undefined
  const m = DEFAULT_EXPORT.exec(source)
  const name = m?.[1] ?? m?.[2] ?? m?.[3]
  return name === undefined ? undefined : { framework: 'React', name }
}

/** Whether a file is worth reading at all. */
export function isSourceFile(file: string): boolean {
  return JS_EXT.test(file) || PY_EXT.test(file) || JVM_EXT.test(file)
}
