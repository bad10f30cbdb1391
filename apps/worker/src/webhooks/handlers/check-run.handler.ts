import type { WebhookHandler } from '../types.js'
import { onCommitCheck } from './commit-checks.js'

/** `check_run` completed: https://docs.github.com/en/webhooks/webhook-events-and-payloads#check_run */
export const checkRunHandler: WebhookHandler = async (ctx, payload) =>
  onCommitCheck(ctx, payload, (payload.check_run as { head_sha?: unknown } | undefined)?.head_sha)
