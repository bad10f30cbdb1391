import type { WebhookHandlerRegistry } from '../types.js'
import { checkRunHandler } from './check-run.handler.js'
import { checkSuiteHandler } from './check-suite.handler.js'
import { githubAppAuthorizationHandler } from './github-app-authorization.handler.js'
import { installationHandler } from './installation.handler.js'
import { installationRepositoriesHandler } from './installation-repositories.handler.js'
import { pullRequestHandler } from './pull-request.handler.js'
import { pushHandler } from './push.handler.js'
import { repositoryHandler } from './repository.handler.js'
import { statusHandler } from './status.handler.js'
import { workflowRunHandler } from './workflow-run.handler.js'

/** The handler of every event in WEBHOOK_EVENT_ACTIONS (the compiler checks none is missing). */
export const webhookHandlers: WebhookHandlerRegistry = {
  pull_request: pullRequestHandler,
  check_run: checkRunHandler,
  check_suite: checkSuiteHandler,
  status: statusHandler,
  workflow_run: workflowRunHandler,
  repository: repositoryHandler,
  push: pushHandler,
  installation: installationHandler,
  installation_repositories: installationRepositoriesHandler,
  github_app_authorization: githubAppAuthorizationHandler,
}
