import type { ApiRouter } from './api.js'
import type { SimContext } from './context.js'

/** Pull request routes. */
export function registerPullRoutes(_api: ApiRouter, _ctx: SimContext): void {}
