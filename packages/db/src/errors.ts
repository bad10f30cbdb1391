/** Whether a pg error is a unique violation, optionally of one named constraint or index. */
export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const e = err as { code?: unknown; constraint?: unknown } | null
  return e?.code === '23505' && (constraint === undefined || e.constraint === constraint)
}
