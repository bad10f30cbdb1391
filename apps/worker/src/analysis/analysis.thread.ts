// Entry point of the analysis worker thread (see analyze-in-thread.ts): analyses one clone and
// posts the result back. Nothing else runs here, so the main thread's event loop stays free.
import { parentPort, workerData } from 'node:worker_threads'
import { type AnalysisLimits, analyzeRepository } from './analyze.js'

const { root, limits } = workerData as { root: string; limits: AnalysisLimits }
const result = await analyzeRepository(root, limits)
parentPort?.postMessage(result)
