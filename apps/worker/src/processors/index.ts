import type { ProcessorRegistry } from '../context.js'

/** Every queue's processor. A worker consumes the queues in WORKER_QUEUES that appear here. */
export const processors: ProcessorRegistry = {}
