export * from './test-env.js'
export * from './simulator.js'
