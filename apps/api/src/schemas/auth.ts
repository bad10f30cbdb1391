import { Type } from '@sinclair/typebox'
import { Text } from './text.js'

export const LoginQuery = Type.Object({
  returnTo: Type.Optional(Text({ maxLength: 2048 })),
})

export const CallbackQuery = Type.Object({
  code: Type.Optional(Text({ maxLength: 512 })),
  state: Type.Optional(Text({ maxLength: 512 })),
  error: Type.Optional(Text({ maxLength: 256 })),
  error_description: Type.Optional(Text({ maxLength: 1024 })),
})

export const LogoutResponse = Type.Object({ success: Type.Literal(true) })

/** The signed-in user as the frontend sees them. */
export const AuthUser = Type.Object({
  login: Type.String(),
  name: Type.Union([Type.String(), Type.Null()]),
  avatar_url: Type.Union([Type.String(), Type.Null()]),
})
