/** Stable code of an App connection whose installation no longer reaches its repository. */
export const APP_ACCESS_REVOKED = 'APP_ACCESS_REVOKED'

/** What a person reads on such a connection, whether a clone found out or a webhook said so. */
export const APP_ACCESS_REVOKED_MESSAGE =
  'Portico’s GitHub App can no longer read this repository: the App was uninstalled, suspended, or the repository was removed from its installation. Add the repository to the installation on GitHub (or install the App again), then refresh or connect again.'
