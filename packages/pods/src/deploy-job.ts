/** Defined next to the deploy job's payload type in @portico/core; re-exported for existing callers. */
export { deployJobOptions } from '@portico/core'
