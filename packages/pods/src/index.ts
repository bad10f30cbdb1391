export * from './catalog.js'
export * from './github-errors.js'
export * from './spec-yaml.js'
export * from './validation.js'
