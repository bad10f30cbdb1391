/**
 * The GitHub webhook events (and actions) Portico acts on; anything else is answered 202
 * `ignored` and never processed. `null`: every action (events without one, such as `push` and
 * `status`, have none). Shared by POST /webhooks/github (what to queue) and the worker's handler
 * registry (what to run). Event reference: https://docs.github.com/en/webhooks/webhook-events-and-payloads
 */
export const WEBHOOK_EVENT_ACTIONS = {
  pull_request: ['closed'],
  check_run: ['completed'],
  check_suite: ['completed'],
  workflow_run: ['completed'],
  status: null,
  repository: ['renamed', 'transferred', 'deleted'],
  push: null,
  installation: ['created', 'deleted', 'suspend', 'unsuspend'],
  installation_repositories: ['added', 'removed'],
  github_app_authorization: ['revoked'],
} as const satisfies Record<string, readonly string[] | null>

/** An event Portico handles. */
export type WebhookEventName = keyof typeof WEBHOOK_EVENT_ACTIONS

/** Whether Portico handles `event` (the `X-GitHub-Event` header) with `action` (the payload's, if any). */
export function isHandledWebhook(
  event: string,
  action: string | null | undefined,
): event is WebhookEventName {
  if (!Object.hasOwn(WEBHOOK_EVENT_ACTIONS, event)) return false
  const actions = WEBHOOK_EVENT_ACTIONS[event as WebhookEventName] as readonly string[] | null
  return actions === null || (typeof action === 'string' && actions.includes(action))
}
