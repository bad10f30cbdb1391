import type { ProcessorRegistry } from '../context.js'
import { cloneRepoProcessor } from './clone-repo.processor.js'
import { deployProcessor } from './deploy.processor.js'
import { maintenanceProcessor } from './maintenance.processor.js'
import { webhooksProcessor } from './webhooks.processor.js'

/** Every queue's processor. A worker consumes the queues in WORKER_QUEUES that appear here. */
export const processors: ProcessorRegistry = {
  clone: cloneRepoProcessor,
  deploy: deployProcessor,
  maintenance: maintenanceProcessor,
  webhooks: webhooksProcessor,
}
