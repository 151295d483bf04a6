/**
 * An in-memory driver service for daemon tests, speaking the agent-facing protocol: versioned
 * attachment list with long-poll on the injected clock, reports recorded per attachment, and a
 * switch to make it unreachable.
 */
import type { ConnectionData, Connector, PortalTuple } from '../../driver/model.ts';
import type { Clock } from '../../shared/clock.ts';
import {
  type AttachmentList,
  type AttachmentReport,
  type ServiceClient,
  ServiceError,
  type WireAttachment,
} from '../service-client.ts';

export class FakeService implements ServiceClient {
  version = 1;
  readonly attachments = new Map<string, WireAttachment>();
  readonly reports = new Map<string, AttachmentReport[]>();
  readonly registered: Connector[] = [];
  /** Unreachable: every call fails as a refused connection would. */
  down = false;
  /** The host NQN the token belongs to; register with another answers 403. */
  tokenHost: string | null = null;
  listCalls = 0;
  /** The host's secrets on the poll (undefined: a service without in-band authentication). */
  dhchap: AttachmentList['dhchap'] = undefined;
  private waiters: (() => void)[] = [];

  constructor(private readonly clock: Clock) {}

  put(
    id: string,
    data: ConnectionData,
    desired: 'connected' | 'disconnected' = 'connected',
    force = false,
    sizeGb?: number,
  ): void {
    this.attachments.set(id, {
      id,
      volume_id: `vol-${id}`,
      desired,
      force,
      ...(sizeGb !== undefined ? { size_gb: sizeGb } : {}),
      connection_info: { driver_volume_type: 'nvmeof', data },
    });
    this.bump();
  }

  /**
   * A host-connected attachment (os-brick connects it): `hostPortals` are the portals the host
   * was handed, by default the connection's.
   */
  putHostConnected(
    id: string,
    data: ConnectionData,
    opts: { desired?: 'connected' | 'disconnected'; hostPortals?: PortalTuple[] | null; force?: boolean } = {},
  ): void {
    this.attachments.set(id, {
      id,
      volume_id: `vol-${id}`,
      desired: opts.desired ?? 'connected',
      force: opts.force ?? false,
      connection_info: { driver_volume_type: 'nvmeof', data },
      connected_by: 'host',
      host_portals: opts.hostPortals === undefined ? (data.portals ?? null) : opts.hostPortals,
    });
    this.bump();
  }

  /** New secrets, as a rotation's step 2 hands them out: the version moves and the poll wakes. */
  setSecrets(dhchap: AttachmentList['dhchap']): void {
    this.dhchap = dhchap;
    this.bump();
  }

  remove(id: string): void {
    this.attachments.delete(id);
    this.bump();
  }

  private bump(): void {
    this.version++;
    for (const w of this.waiters.splice(0)) w();
  }

  last(id: string): AttachmentReport | undefined {
    const r = this.reports.get(id);
    return r?.[r.length - 1];
  }

  states(id: string): string[] {
    return (this.reports.get(id) ?? []).map((r) => r.state);
  }

  private check(): void {
    if (this.down) throw new ServiceError('no answer (ECONNREFUSED)', null);
  }

  async register(connector: Connector): Promise<{ host: { nqn: string; name: string } }> {
    this.check();
    if (this.tokenHost && this.tokenHost !== connector.nqn)
      throw new ServiceError('POST /v1/agent/register: 403 forbidden', 403);
    this.registered.push(connector);
    return { host: { nqn: connector.nqn, name: connector.host } };
  }

  async listAttachments(since: number | null, waitSeconds: number, signal?: AbortSignal): Promise<AttachmentList> {
    this.listCalls++;
    this.check();
    if (since === this.version && waitSeconds > 0) {
      // Like the HTTP client (axios takes its abort listener off when the request ends), nothing
      // is left on the caller's signal: the daemon's listener test counts them.
      const ended = new AbortController();
      await new Promise<void>((resolve) => {
        const stop = () => ended.abort();
        this.waiters.push(stop);
        signal?.addEventListener('abort', stop, { once: true });
        ended.signal.addEventListener('abort', () => {
          signal?.removeEventListener('abort', stop);
          resolve();
        });
        void this.clock.sleep(waitSeconds * 1000, ended.signal).then(stop);
      });
      this.check();
    }
    return {
      version: this.version,
      attachments: [...this.attachments.values()].map((a) => structuredClone(a)),
      ...(this.dhchap === undefined ? {} : { dhchap: structuredClone(this.dhchap) }),
    };
  }

  async report(id: string, report: AttachmentReport): Promise<void> {
    this.check();
    if (!this.attachments.has(id)) throw new ServiceError(`PUT /v1/agent/attachments/${id}/report: 404`, 404);
    this.reports.set(id, [...(this.reports.get(id) ?? []), structuredClone(report)]);
  }
}
