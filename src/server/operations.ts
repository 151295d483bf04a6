import type { DriverDeps } from '../driver/deps.ts';
import type { Logger } from '../shared/logger.ts';
import type { Handlers, OperationId } from './call.ts';
import { agentHandlers } from './handlers/agent.ts';
import { attachmentHandlers } from './handlers/attachments.ts';
import { capabilityHandlers } from './handlers/capabilities.ts';
import { dashboardHandlers } from './handlers/dashboard.ts';
import { hostHandlers } from './handlers/hosts.ts';
import { snapshotHandlers } from './handlers/snapshots.ts';
import { volumeHandlers } from './handlers/volumes.ts';
import type { ServiceMetrics } from './metrics.ts';
import { type ReadinessCheck, readinessProbe } from './readiness.ts';

/** Every operation of api-spec/portalis.yaml with its handler: one missing, or one too many, fails the typecheck. */
export function operationHandlers(o: {
  deps: DriverDeps;
  spec: Record<string, unknown>;
  readiness: ReadinessCheck[];
  metrics?: ServiceMetrics;
  log: Logger;
}): Handlers<OperationId> {
  // Serialised once: every `GET /openapi.json` (no token needed) sends this one buffer, so answers
  // queued for a client that does not read share it instead of each holding a copy.
  const specJson = Buffer.from(JSON.stringify(o.spec));
  return {
    ...volumeHandlers(o.deps),
    ...attachmentHandlers(o.deps),
    ...hostHandlers(o.deps),
    ...agentHandlers(o.deps),
    ...snapshotHandlers(o.deps),
    ...capabilityHandlers(o.deps),
    ...dashboardHandlers(o.metrics),
    getHealthz: async () => ({ status: 200, body: { status: 'ok' } }),
    getOpenApi: async () => ({ status: 200, body: specJson, contentType: 'application/json; charset=utf-8' }),
    getReadyz: readinessProbe(o.readiness, o.log),
  };
}
