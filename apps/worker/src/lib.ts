// What other workspaces (tests, the dev launcher) use of the worker.

export type { Processor, ProcessorFactory, ProcessorRegistry, WorkerContext } from './context.js'
export { analysisDuration, cloneDuration } from './metrics.js'
export { processors } from './processors/index.js'
export { type RegisterWorkerOptions, registerWorker } from './register-worker.js'
export { installSignalHandlers, startWorker, type WorkerRuntime } from './runtime.js'
