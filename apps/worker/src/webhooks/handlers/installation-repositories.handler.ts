import { ignored, type WebhookHandler } from '../types.js'

/**
 * HOOK POINT (not wired yet): installation_repositories removed → the affected App connections fail with APP_ACCESS_REVOKED.
 * Deliveries are already verified, stored and queued; this handler records them as `ignored`
 * until the connection work (issues 13/14) wires it. Replace the body, keep the export.
 */
export const installationRepositoriesHandler: WebhookHandler = async (_ctx, payload) =>
  ignored(`hook point not wired (action ${String(payload.action ?? 'none')})`)
