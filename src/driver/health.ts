import { REPORT_STALE_MS } from './agent-sync.ts';
import type { DriverDeps } from './deps.ts';
import { attachmentNotFound } from './guards.ts';
import type { AttachmentEvent, CellHealth, HealthMatrix } from './model.ts';

export const DEFAULT_EVENT_RETENTION_MS = 7 * 24 * 3600_000;

/**
 * An attachment's path-health history, newest first. `hostNqn` confines a host token to its own
 * attachments: another host's answers as a missing one.
 */
export async function attachmentEvents(
  deps: DriverDeps,
  attachmentId: string,
  opts: { hostNqn: string | null; limit: number },
): Promise<AttachmentEvent[]> {
  const a = await deps.store.getAttachment(attachmentId);
  if (!a || (opts.hostNqn !== null && a.hostNqn !== opts.hostNqn)) throw attachmentNotFound(attachmentId);
  return deps.health.attachmentEvents(attachmentId, opts.limit);
}

export interface MatrixFilter {
  volumeId?: string;
  hostNqn?: string;
  health?: CellHealth[];
  offset?: number;
  limit?: number;
  order?: 'volume' | 'worst';
}

/** The volume × host matrix of live attachments; a report older than 180 s counts as `unknown`. */
export function healthMatrix(deps: DriverDeps, f: MatrixFilter, now = new Date()): Promise<HealthMatrix> {
  return deps.health.healthMatrix(
    {
      volumeId: f.volumeId,
      hostNqn: f.hostNqn,
      health: f.health,
      offset: f.offset ?? 0,
      limit: f.limit ?? 100,
      order: f.order ?? 'volume',
      staleMs: REPORT_STALE_MS,
    },
    now,
  );
}

/** Drops history older than the retention; returns how many events went. */
export function pruneHealthEvents(deps: DriverDeps, now = new Date()): Promise<number> {
  return deps.health.pruneEvents(new Date(now.getTime() - (deps.eventRetentionMs ?? DEFAULT_EVENT_RETENTION_MS)));
}
