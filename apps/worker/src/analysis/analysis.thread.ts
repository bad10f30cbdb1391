// Entry point of an analysis worker thread (see analyze-in-thread.ts): analyses one clone per
// request and posts the result back, then waits for the next. Nothing else runs here, so the
// main thread's event loop stays free.
import { getHeapStatistics } from 'node:v8'
import { parentPort } from 'node:worker_threads'
import { analyzeRepository } from './analyze.js'
import type { AnalysisReply, AnalysisRequest } from './analyze-in-thread.js'

parentPort?.on('message', ({ id, root, limits }: AnalysisRequest) => {
  analyzeRepository(root, limits).then(
    (result) => reply({ id, result, heapBytes: getHeapStatistics().used_heap_size }),
    (err: unknown) => reply({ id, error: err instanceof Error ? err.message : String(err) }),
  )
})

function reply(message: AnalysisReply): void {
  parentPort?.postMessage(message)
}
