export { Ledger } from './ledger.js'
export { type RefusalKind, type RefusalOptions, refusalFault } from './refusals.js'
export { defaultSeed, loadSeedFile, SeedError, validateSeed } from './seed.js'
export { type Simulator, type SimulatorOptions, startSimulator } from './simulator.js'
export type {
  FaultSpec,
  LedgerEntry,
  LedgerFilter,
  RepoPermission,
  Seed,
  SeedCollaborator,
  SeedOAuthApp,
  SeedOrg,
  SeedOrgMember,
  SeedRepo,
  SeedToken,
  SeedUser,
  TokenKind,
} from './types.js'
