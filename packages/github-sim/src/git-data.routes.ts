import type { ApiRouter } from './api.js'
import type { SimContext } from './context.js'

/** Git database routes: refs, trees, blobs, commits. */
export function registerGitDataRoutes(_api: ApiRouter, _ctx: SimContext): void {}
