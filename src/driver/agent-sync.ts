import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import { attachmentNotFound } from './guards.ts';
import type { AgentReport, Attachment, ConnectedBy, ConnectionInfo, PathHealth, PortalTuple } from './model.ts';
import type { AgentAttachment } from './ports.ts';
import { LIVE_STATUSES } from './model.ts';
import { finishDetach } from './terminate-connection.ts';

/** Reports are refreshed at least every 60 s; one older than this is shown as `unknown`. */
export const REPORT_STALE_MS = 180_000;

export interface AgentTask {
  attachmentId: string;
  volumeId: string;
  desired: 'connected' | 'disconnected';
  force: boolean;
  connectionInfo: ConnectionInfo;
  volumeSizeGb: number;
  /** `host`: the host connects and disconnects the device; the agent assists (docs/DECISIONS.md). */
  connectedBy: ConnectedBy;
  hostPortals: PortalTuple[] | null;
}

export interface AgentTaskList {
  version: number;
  tasks: AgentTask[];
}

function toTasks(rows: AgentAttachment[]): AgentTask[] {
  return rows.map(({ attachment: a, volumeSizeGb }) => ({
    attachmentId: a.id,
    volumeId: a.volumeId,
    desired: LIVE_STATUSES.includes(a.status) ? 'connected' : 'disconnected',
    force: a.detachForce,
    connectionInfo: a.connectionInfo!,
    volumeSizeGb,
    connectedBy: a.connectedBy,
    hostPortals: a.hostPortals,
  }));
}

export interface PollOptions {
  /** The client gave up: stop waiting. */
  signal?: AbortSignal;
  /**
   * SHA-256 of the token the poll was authenticated with. After a wait it is checked again:
   * a token revoked (or replaced) while the poll slept gets `unauthorized`, not the host's list.
   */
  tokenHash?: string;
}

/**
 * The agent's long poll: answers at once when the host's version differs from `since` (or
 * `since` is null), otherwise when it changes or after `waitMs`, whichever comes first.
 * The subscription is taken before the version is read, so a change in between is not missed.
 * Each read is one database round trip (version, token and list in one statement, the first
 * also marking the host seen). A wake without a change of the version (a token revoked
 * elsewhere, a notification this poll had already seen, a lost LISTEN connection) answers only
 * when the token is gone; otherwise the poll waits on for the rest of its time.
 */
export async function pollAgentTasks(
  deps: Pick<DriverDeps, 'hosts' | 'hostChanges'>,
  hostNqn: string,
  since: number | null,
  waitMs: number,
  opts: PollOptions = {},
): Promise<AgentTaskList> {
  const { signal, tokenHash } = opts;
  const deadline = Date.now() + waitMs;
  let sub = deps.hostChanges.subscribe(hostNqn);
  try {
    // Without a wait the list is wanted whatever the version: read it in the same round trip.
    let view = await deps.hosts.agentView(hostNqn, { since: waitMs > 0 ? since : null, touch: true });
    let waited = false;
    const aborted = new Promise<'aborted'>((resolve) =>
      signal?.addEventListener('abort', () => resolve('aborted'), { once: true }),
    );
    while (view.attachments === null) {
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) break;
      waited = true;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), left)));
      const why = await Promise.race([sub.changed.then(() => 'changed' as const), timeout, aborted]);
      clearTimeout(timer);
      if (why !== 'changed') break;
      // Subscribed again before the read, as at the start: a change during the read wakes it.
      sub.cancel();
      sub = deps.hostChanges.subscribe(hostNqn);
      view = await deps.hosts.agentView(hostNqn, { since, tokenHash });
      if (!view.tokenValid) throw revoked();
    }
    // Timed out (or the client left) with the version unchanged: the list as it is.
    if (view.attachments === null) {
      view = await deps.hosts.agentView(hostNqn, { since: null, tokenHash });
      if (waited && !view.tokenValid) throw revoked();
    }
    return { version: view.version, tasks: toTasks(view.attachments ?? []) };
  } finally {
    sub.cancel();
  }
}

const revoked = () => new DriverError('unauthorized', 'the token was revoked while the poll waited');

/** Stores an agent's report on one of its own host's attachments. */
export async function recordAgentReport(
  deps: DriverDeps,
  hostNqn: string,
  attachmentId: string,
  report: Omit<AgentReport, 'reportedAt'>,
): Promise<Attachment> {
  const saved = await deps.hosts.saveReport(hostNqn, attachmentId, { ...report, reportedAt: new Date() });
  // Another host's attachment answers as a missing one: a host token learns nothing of others.
  if (!saved) throw attachmentNotFound(attachmentId);
  // The device is gone from the host: a detach waiting for this can now revoke the access.
  if (report.state === 'disconnected' && saved.status === 'detaching') await finishDetach(deps, attachmentId);
  return saved;
}

/**
 * The health the service shows: the agent's, `unknown` without a fresh report, `detached` when
 * the agent last saw the host let go of the device (the matrix's cell says the same).
 */
export function effectiveHealth(report: AgentReport | null, now: Date): PathHealth | 'unknown' | 'detached' {
  if (!report) return 'unknown';
  if (now.getTime() - report.reportedAt.getTime() > REPORT_STALE_MS) return 'unknown';
  if (report.state === 'host_detached') return 'detached';
  return report.health ?? 'unknown';
}
