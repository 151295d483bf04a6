import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import type { AgentReport, Attachment, ConnectionInfo, PathHealth } from './model.ts';
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
}

export interface AgentTaskList {
  version: number;
  tasks: AgentTask[];
}

async function currentTasks(deps: DriverDeps, hostNqn: string): Promise<AgentTask[]> {
  const rows = await deps.hosts.agentAttachments(hostNqn);
  return rows.map(({ attachment: a, volumeSizeGb }) => ({
    attachmentId: a.id,
    volumeId: a.volumeId,
    desired: LIVE_STATUSES.includes(a.status) ? 'connected' : 'disconnected',
    force: a.detachForce,
    connectionInfo: a.connectionInfo!,
    volumeSizeGb,
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
 */
export async function pollAgentTasks(
  deps: DriverDeps,
  hostNqn: string,
  since: number | null,
  waitMs: number,
  opts: PollOptions = {},
): Promise<AgentTaskList> {
  const { signal, tokenHash } = opts;
  await deps.hosts.touchHost(hostNqn);
  const sub = deps.hostChanges.subscribe(hostNqn);
  try {
    let version = await deps.hosts.hostVersion(hostNqn);
    if (since !== null && version === since && waitMs > 0 && !signal?.aborted) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)));
      const aborted = new Promise<void>((resolve) =>
        signal?.addEventListener('abort', () => resolve(), { once: true }),
      );
      await Promise.race([sub.changed, timeout, aborted]);
      clearTimeout(timer);
      if (tokenHash !== undefined && (await deps.hosts.hostByTokenHash(tokenHash))?.nqn !== hostNqn)
        throw new DriverError('unauthorized', 'the token was revoked while the poll waited');
      version = await deps.hosts.hostVersion(hostNqn);
    }
    return { version, tasks: await currentTasks(deps, hostNqn) };
  } finally {
    sub.cancel();
  }
}

/** Stores an agent's report on one of its own host's attachments. */
export async function recordAgentReport(
  deps: DriverDeps,
  hostNqn: string,
  attachmentId: string,
  report: Omit<AgentReport, 'reportedAt'>,
): Promise<Attachment> {
  const a = await deps.store.getAttachment(attachmentId);
  // Another host's attachment answers as a missing one: a host token learns nothing of others.
  if (!a || a.hostNqn !== hostNqn)
    throw new DriverError('attachment_not_found', `attachment ${attachmentId} does not exist`);
  await deps.hosts.touchHost(hostNqn);
  const saved = await deps.hosts.saveReport(attachmentId, { ...report, reportedAt: new Date() });
  // The device is gone from the host: a detach waiting for this can now revoke the access.
  if (report.state === 'disconnected' && saved.status === 'detaching') await finishDetach(deps, attachmentId);
  return saved;
}

/** The health the service shows: the agent's, or `unknown` without a fresh report. */
export function effectiveHealth(report: AgentReport | null, now: Date): PathHealth | 'unknown' {
  if (!report || report.health === null) return 'unknown';
  if (now.getTime() - report.reportedAt.getTime() > REPORT_STALE_MS) return 'unknown';
  return report.health;
}
