import { endSessionsOfGithubUser, sessionKeyPrefix } from '@portico/core'
import { ignored, processed, type WebhookHandler } from '../types.js'

/**
 * `github_app_authorization` revoked → the user took back Portico's authorization on GitHub, so
 * every Portico session of that GitHub user ends (as a logout does; their token no longer works).
 * https://docs.github.com/en/webhooks/webhook-events-and-payloads#github_app_authorization
 */
export const githubAppAuthorizationHandler: WebhookHandler = async (ctx, payload) => {
  if (payload.action !== 'revoked') return ignored(`github_app_authorization ${String(payload.action)}`)
  const githubId = (payload.sender as { id?: unknown } | undefined)?.id
  if (typeof githubId !== 'number' || !Number.isSafeInteger(githubId)) return ignored('no sender id')
  const ended = await endSessionsOfGithubUser(ctx.redis, sessionKeyPrefix(ctx.config.REDIS_PREFIX), githubId)
  return processed(`${ended} session(s) of GitHub user ${githubId} ended`)
}
