export * from './databases.js'
export * from './free-port.js'
export * from './simulator.js'
export * from './test-env.js'
