import type { WebhookHandler } from '../types.js'
import { onCommitCheck } from './commit-checks.js'

/** `check_suite` completed: https://docs.github.com/en/webhooks/webhook-events-and-payloads#check_suite */
export const checkSuiteHandler: WebhookHandler = async (ctx, payload) =>
  onCommitCheck(ctx, payload, (payload.check_suite as { head_sha?: unknown } | undefined)?.head_sha)
