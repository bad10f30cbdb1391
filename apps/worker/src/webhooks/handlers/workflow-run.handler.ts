import type { WebhookHandler } from '../types.js'
import { onCommitCheck } from './commit-checks.js'

/** `workflow_run` completed: https://docs.github.com/en/webhooks/webhook-events-and-payloads#workflow_run */
export const workflowRunHandler: WebhookHandler = async (ctx, payload) =>
  onCommitCheck(ctx, payload, (payload.workflow_run as { head_sha?: unknown } | undefined)?.head_sha)
