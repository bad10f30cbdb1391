export * from './simulator.js'
export * from './test-env.js'
