/**
 * Attachment reports to the service: sent when they change and refreshed at least every
 * `refreshMs` (60 s: the service shows a report older than 180 s as `unknown`, the rule of the
 * Proxmox multipath series). A report that could not be sent stays queued (only the newest per
 * attachment) and goes out when the service answers again.
 */
import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import { type AttachmentReport, type ServiceClient, ServiceError } from './service-client.ts';

export class Reporter {
  private sent = new Map<string, { json: string; at: number; state: AttachmentReport['state'] }>();
  private queued = new Map<string, AttachmentReport>();

  constructor(
    private readonly service: ServiceClient,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly refreshMs: number,
    /** Adds what is read at sending time (host-auth.ts: each path's `auth_generation`). */
    private readonly decorate: (r: AttachmentReport) => Promise<AttachmentReport> = async (r) => r,
  ) {}

  /**
   * Queues the report when it differs from the last one sent or that one is getting old, or when
   * `changed`: what `decorate` adds moved under an equal report (a controller replaced under its name).
   */
  submit(id: string, report: AttachmentReport, changed = false): boolean {
    const json = JSON.stringify(report);
    const last = this.sent.get(id);
    if (!changed && last && last.json === json && this.clock.now() - last.at < this.refreshMs) return false;
    this.queued.set(id, report);
    return true;
  }

  /** Re-queues every report last sent `refreshMs` ago or more. */
  refreshStale(): void {
    const now = this.clock.now();
    for (const [id, s] of this.sent)
      if (now - s.at >= this.refreshMs && !this.queued.has(id))
        this.queued.set(id, JSON.parse(s.json) as AttachmentReport);
  }

  /** Milliseconds until the oldest sent report is due for a refresh. */
  nextRefreshInMs(): number {
    let due = this.refreshMs;
    for (const s of this.sent.values()) due = Math.min(due, s.at + this.refreshMs - this.clock.now());
    return Math.max(0, due);
  }

  /** Queues every report sent again (what `decorate` adds has changed: a rotation moved a controller). */
  requeueAll(): void {
    for (const [id, s] of this.sent)
      if (!this.queued.has(id)) this.queued.set(id, JSON.parse(s.json) as AttachmentReport);
  }

  /** Stops reporting an attachment the service no longer lists. */
  forget(id: string): void {
    this.sent.delete(id);
    this.queued.delete(id);
  }

  get pending(): number {
    return this.queued.size;
  }

  /** Sends everything queued; false when the service could not be reached (retry later). */
  async flush(): Promise<boolean> {
    for (const [id, report] of [...this.queued]) {
      try {
        await this.service.report(id, await this.decorate(report));
        // A new state delivered is an event in the attachment's life (connected, disconnected, an
        // error), worth a line; the periodic refreshes and health changes are not logged here.
        if (this.sent.get(id)?.state !== report.state)
          this.log.info({ attachment: id, state: report.state, health: report.health }, 'reported');
        this.sent.set(id, { json: JSON.stringify(report), at: this.clock.now(), state: report.state });
        if (this.queued.get(id) === report) this.queued.delete(id);
      } catch (e) {
        if (e instanceof ServiceError && !e.retryable) {
          // 404: the attachment is gone on the service; 4xx: this report will never be taken.
          this.log.warn({ attachment: id, error: e.message }, 'report rejected; dropped');
          this.queued.delete(id);
          continue;
        }
        this.log.warn({ attachment: id, err: (e as Error).message }, 'report not delivered; will retry');
        return false;
      }
    }
    return true;
  }
}
