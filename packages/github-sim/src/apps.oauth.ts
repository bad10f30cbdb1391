import type { SimContext } from './context.js'
import type { SeedOAuthApp } from './types.js'

/** A GitHub App seen as an OAuth client (its client id/secret and callback URL), for the web flow. */
export function githubAppClient(ctx: SimContext, clientId: string | undefined): SeedOAuthApp | undefined {
  const app = ctx.apps.byClientId(clientId)
  if (!app?.callbackUrl) return undefined
  return {
    client_id: app.clientId,
    client_secret: app.clientSecret,
    callback_url: app.callbackUrl,
    name: app.name,
    allow_loopback_redirects: app.seed.allow_loopback_redirects,
  }
}

/**
 * The token response for a GitHub App user token: `expires_in` (28800 s) and `refresh_token`
 * (`ghr_`, `refresh_token_expires_in` 15897600 s) when the App expires user tokens; scope is empty
 * because App permissions, not scopes, bound the token.
 */
export function userTokenFields(t: {
  token: string
  refreshToken?: string
  expiresIn?: number
  refreshExpiresIn?: number
}): Record<string, string | number> {
  return {
    access_token: t.token,
    ...(t.refreshToken
      ? {
          expires_in: t.expiresIn!,
          refresh_token: t.refreshToken,
          refresh_token_expires_in: t.refreshExpiresIn!,
        }
      : {}),
    scope: '',
    token_type: 'bearer',
  }
}
