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
/*
 * Every pattern below is linear in the length of its input on a backtracking engine (issue 10,
 * item 13): a run that a pattern could start matching anywhere inside (identifiers) is entered
 * only at its first character (a look-behind), whitespace between tokens is bounded (WS), and
 * every other repeat is bounded too, so no start position can rescan the rest of the file.
 * Adjacent repeats never overlap (`\s*;?\s*` would be quadratic on a run of spaces).
 */
const WS = String.raw`\s{0,64}`
const WS1 = String.raw`\s{1,64}`
const IDENT = String.raw`(?<![\w$])[A-Za-z_$][\w$]{0,127}`
const STRING = String.raw`(['"\`])([^'"\`\n]{0,1024})`

/** Joins path segments into one `/`-rooted path without duplicate slashes. */
export function joinPaths(...parts: (string | undefined)[]): string {
  const segments = parts
    .filter((p): p is string => p !== undefined && p !== '')
    .flatMap((p) => p.split('/'))
    .filter((s) => s !== '')
  return `/${segments.join('/')}`
}

const importOf = (name: string) =>
  new RegExp(String.raw`(?:\bfrom${WS1}['"]${name}['"]|\brequire\(${WS}['"]${name}['"]${WS}\))`)
const EXPRESS_IMPORT = importOf('express')
const FASTIFY_IMPORT = importOf('fastify')
const NEST_IMPORT = /['"]@nestjs\/common['"]/
const CALL_ROUTE = new RegExp(String.raw`(${IDENT})\.(${HTTP_METHODS})\(${WS}${STRING}\3`, 'g')
const FASTIFY_ROUTE_OBJECT = new RegExp(String.raw`\.route\(${WS}\{([^{}]{0,4096})\}`, 'g')
const FASTIFY_URL = new RegExp(String.raw`\burl${WS}:${WS}(['"\`])(\/[^'"\`\n]{0,1024})\1`)
const FASTIFY_METHOD = new RegExp(String.raw`\bmethod${WS}:${WS}(\[[^\]]{0,256}\]|['"\`]\w{1,16}['"\`])`)
const NEST_DECORATOR = new RegExp(
  String.raw`@(Controller|Get|Post|Put|Patch|Delete|Options|Head|All)\(${WS}(?:\{${WS}path${WS}:${WS})?(?:\[${WS})?(?:${STRING}\2)?`,
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
      const url = FASTIFY_URL.exec(body)?.[2]
      const methods = FASTIFY_METHOD.exec(body)?.[1]
      if (url === undefined || methods === undefined) continue
      for (const method of methods.match(/\w+/g) ?? []) {
        routes.push({ framework: 'Fastify', method: method.toUpperCase(), path: url })
      }
    }
  }
  return routes
}

// Python statements start a line; `[ \t]*` (not `\s*`) keeps each line start from scanning the
// following lines' whitespace.
const FLASK_IMPORT = /^[ \t]*(?:from[ \t]+flask\b|import[ \t]+flask\b)/m
const FASTAPI_IMPORT = /^[ \t]*(?:from[ \t]+fastapi\b|import[ \t]+fastapi\b)/m
const PY_PREFIX = /^[ \t]*(\w{1,128})[ \t]*=[ \t]*(?:APIRouter|Blueprint)\(([^)]{0,256})\)/gm
const PY_PREFIX_ARG = new RegExp(String.raw`\b(?:prefix|url_prefix)${WS}=${WS}(['"])([^'"\n]{0,1024})\1`)
const PY_ROUTE_DECORATOR = new RegExp(
  String.raw`@(\w{1,128})\.route\(${WS}(['"])([^'"\n]{0,1024})\2([^)]{0,256})\)`,
  'g',
)
const PY_METHODS_ARG = new RegExp(String.raw`methods${WS}=${WS}[[(]([^\])]{0,256})`)
const PY_METHOD_DECORATOR = new RegExp(
  String.raw`@(\w{1,128})\.(get|post|put|patch|delete|options|head)\(${WS}(['"])([^'"\n]{0,1024})\3`,
  'g',
)

function pythonRoutes(source: string): FoundRoute[] {
  const flask = FLASK_IMPORT.test(source)
  const fastapi = FASTAPI_IMPORT.test(source)
  if (!flask && !fastapi) return []
  const prefixes = new Map<string, string>()
  for (const m of source.matchAll(PY_PREFIX)) {
    const prefix = PY_PREFIX_ARG.exec(m[2] ?? '')?.[2]
    if (prefix !== undefined) prefixes.set(m[1] ?? '', prefix)
  }
  const routes: FoundRoute[] = []
  if (flask) {
    for (const m of source.matchAll(PY_ROUTE_DECORATOR)) {
      const [, receiver = '', , path = '', rest = ''] = m
      const list = PY_METHODS_ARG.exec(rest)?.[1]
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
const SPRING_MAPPING = new RegExp(
  String.raw`@(Get|Post|Put|Patch|Delete|Request)Mapping\b(?:${WS}\(([^)]{0,256})\))?`,
  'g',
)
const CLASS_DECLARATION = /\bclass\s+\w/
const MAPPING_NAMED = new RegExp(String.raw`\b(?:value|path)${WS}=${WS}(?:\{${WS})?"([^"\n]{0,1024})"`)
const MAPPING_BARE = new RegExp(String.raw`^${WS}(?:\{${WS})?"([^"\n]{0,1024})"`)

/** First path of a mapping's arguments: `"/x"`, `value = "/x"`, `path = {"/x", …}`. */
function mappingPath(args: string | undefined): string | undefined {
  if (args === undefined) return undefined
  const named = MAPPING_NAMED.exec(args)
  if (named) return named[1]
  const bare = MAPPING_BARE.exec(args)
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
const DEFAULT_EXPORT = new RegExp(
  String.raw`\bexport${WS1}default${WS1}(?:(?:async${WS1})?function${WS}(?:\*${WS})?([A-Z][A-Za-z0-9]{0,127})${WS}\(|class${WS1}([A-Z][A-Za-z0-9]{0,127})\b|([A-Z][A-Za-z0-9]{0,127})(?![A-Za-z0-9])(?:[ \t]{0,64};)?[ \t]{0,64}$)`,
  'm',
)
const LOOKS_LIKE_REACT = new RegExp(
  String.raw`\bfrom${WS1}['"]react['"]|\brequire\(${WS}['"]react['"]${WS}\)|<\/|\/>`,
)

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
