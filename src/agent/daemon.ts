/**
 * The agent daemon: reconciles this host's kernel with the attachments the service wants.
 *
 * Three loops, all on the injected Clock:
 * - watch: register, then long-poll the attachment list; each change reconciles that attachment;
 *   a failing service is retried with exponential backoff and the last known list is kept;
 * - recheck: every `recheckIntervalMs` every attachment is reconciled again. For a connected one
 *   that is an idempotent connect: live paths are adopted, missing ones reconnected (self-healing),
 *   and the report refreshed;
 * - report: delivers queued reports, backing off while the service is down.
 *
 * Safety rules: nothing is done to the kernel before the service's list is known (a restarted
 * agent rebuilds its view from the kernel and that list); an attachment that disappears from the
 * list is left alone; a device is only torn down when the service says `disconnected`, and then
 * never while in use unless `force`.
 *
 * Each attachment's pass goes by who connects it (docs/DECISIONS.md, "Who connects an
 * attachment"): an agent-connected one to owned.ts (connect, heal, follow, tear down), a
 * host-connected one to assisted.ts (observe, add the paths a portal change brings, release only
 * what the agent added).
 */
import { type Clock, wakeableSleep } from '../shared/clock.ts';
import type { Connector as ConnectorDict } from '../driver/model.ts';
import { type Logger, silentLogger } from '../shared/logger.ts';
import { AssistedAttachments } from './assisted.ts';
import { type AuthTarget, type Dhchap, HostAuth } from './host-auth.ts';
import type { HostPort } from './host/port.ts';
import { OwnedAttachments, errorReport } from './owned.ts';
import { type AttachSpec, type PortalSpec, parseConnectionData, toAttachSpec } from './connection-data.ts';
import type { Attacher } from './attacher.ts';
import { Reporter } from './reports.ts';
import { type AttachmentReport, type ServiceClient, ServiceError, type WireAttachment } from './service-client.ts';
import { type Tracked, hostConnected, neededBy, track } from './tracked.ts';

/** What the daemon did, for its metrics (each call after the fact; durations on the daemon's clock). */
export interface DaemonObserver {
  /** A device that was not there was connected (ok) or could not be (failed). */
  connect(result: 'ok' | 'failed', ms: number): void;
  /** A teardown ended: done, refused (the device is in use, nothing done) or failed. */
  disconnect(result: 'ok' | 'refused' | 'failed', ms: number): void;
  /** A recheck brought back paths of a connected device. */
  pathsReconnected(n: number): void;
}

export interface DaemonOptions {
  attacher: Attacher;
  service: ServiceClient;
  /** The host, for in-band authentication (host-auth.ts); without it the poll's `dhchap` is ignored. */
  host?: HostPort;
  /** The connector dict to register with (connector-properties). */
  connectorProperties: () => Promise<ConnectorDict>;
  clock: Clock;
  log?: Logger;
  recheckIntervalMs?: number;
  reportRefreshMs?: number;
  pollWaitSeconds?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /**
   * A fresh attach is reported `connecting` only once it has taken this long: most finish within
   * it, and a report superseded a moment later by `connected` is only load on the service (and,
   * sent during the connects, CPU taken from them on a small host).
   */
  connectingReportDelayMs?: number;
  /**
   * How often a host-connected attachment whose host has not connected it yet is looked at
   * again (`awaiting_host` → `connected` within this, rather than the next recheck).
   */
  hostWatchMs?: number;
  /** How long the agent waits for a host still connecting its portals (assisted.ts `stillConnecting`). */
  hostSettleMs?: number;
  observer?: DaemonObserver;
}

export class AgentDaemon {
  private readonly log: Logger;
  private readonly reporter: Reporter;
  private readonly tracked = new Map<string, Tracked>();
  private version: number | null = null;
  private registered = false;
  private running = new Map<string, Promise<void>>();
  private again = new Set<string>();
  private wakeReporter: (() => void) | null = null;
  private wakeRecheck: (() => void) | null = null;
  private readonly options: Required<Omit<DaemonOptions, 'log' | 'observer' | 'host'>>;
  private readonly auth: HostAuth | null;
  private dhchap: Dhchap = undefined;
  /** The applyAuth pass running, and the one queued behind it (applyAuth). */
  private authRunning: Promise<void> | null = null;
  private authQueued: Promise<void> | null = null;
  private readonly observer: DaemonObserver | undefined;
  private readonly assisted: AssistedAttachments;
  private readonly owned: OwnedAttachments;

  constructor(opts: DaemonOptions) {
    this.log = opts.log ?? silentLogger;
    this.observer = opts.observer;
    // `??` per field: an option passed as undefined keeps its default (a spread would not).
    this.options = {
      attacher: opts.attacher,
      service: opts.service,
      connectorProperties: opts.connectorProperties,
      clock: opts.clock,
      recheckIntervalMs: opts.recheckIntervalMs ?? 30_000,
      reportRefreshMs: opts.reportRefreshMs ?? 60_000,
      pollWaitSeconds: opts.pollWaitSeconds ?? 30,
      backoffInitialMs: opts.backoffInitialMs ?? 1000,
      backoffMaxMs: opts.backoffMaxMs ?? 60_000,
      connectingReportDelayMs: opts.connectingReportDelayMs ?? 1000,
      hostWatchMs: opts.hostWatchMs ?? 2000,
      hostSettleMs: opts.hostSettleMs ?? 10_000,
    };
    this.auth = opts.host ? new HostAuth(opts.host, this.log) : null;
    const auth = this.auth;
    const decorate = auth ? (r: AttachmentReport) => auth.decorate(r) : undefined;
    this.reporter = new Reporter(opts.service, opts.clock, this.log, this.options.reportRefreshMs, decorate);
    this.owned = new OwnedAttachments({
      attacher: opts.attacher,
      clock: opts.clock,
      log: this.log,
      observer: this.observer,
      connectingReportDelayMs: this.options.connectingReportDelayMs,
      report: (id, r, changed) => this.report(id, r, changed),
      others: (id) => this.othersThan(id),
      tracked: (id) => this.tracked.get(id),
      auth: auth?.forOwned((id) => this.handedElsewhere(id)),
    });
    this.assisted = new AssistedAttachments({
      attacher: opts.attacher,
      clock: opts.clock,
      hostSettleMs: this.options.hostSettleMs,
      log: this.log,
      report: (id, r) => this.report(id, r),
      others: (id) => this.othersThan(id),
      othersHostPortals: (id) => this.handedElsewhere(id),
    });
  }

  /** Runs until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.watchLoop(signal), this.recheckLoop(signal), this.reportLoop(signal)]);
    await this.idle();
  }

  /** Resolves when no reconcile is running. */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.all([...this.running.values()]);
  }

  /** The attachments known from the service (for diagnostics and tests). */
  get attachments(): WireAttachment[] {
    return [...this.tracked.values()].map((t) => t.att);
  }

  // ------------------------------------------------------------------ loops

  private async watchLoop(signal: AbortSignal): Promise<void> {
    let backoff = this.options.backoffInitialMs;
    while (!signal.aborted) {
      const started = this.options.clock.now();
      try {
        await this.syncOnce(signal);
        backoff = this.options.backoffInitialMs;
        // A service that answers at once without a change must not make this a busy loop.
        if (this.options.clock.now() - started < 1000) await this.sleep(1000, signal);
      } catch (e) {
        if (signal.aborted) break;
        if (e instanceof ServiceError && (e.status === 401 || e.status === 403)) this.registered = false;
        this.log.warn(
          { err: (e as Error).message, retryInMs: backoff },
          'service unavailable; devices stay as they are',
        );
        await this.sleep(backoff, signal);
        backoff = Math.min(backoff * 2, this.options.backoffMaxMs);
      }
    }
  }

  private async recheckLoop(signal: AbortSignal): Promise<void> {
    const { clock, recheckIntervalMs, hostWatchMs } = this.options;
    let sinceFull = 0;
    while (!signal.aborted) {
      // Between full passes, host-connected attachments still waiting for their host are looked
      // at every hostWatchMs: the host connects them at its own pace, and nothing tells the agent.
      const waiting = () =>
        [...this.tracked.entries()].filter(([, t]) => t.awaitingHost && t.att.desired === 'connected');
      const left = recheckIntervalMs - sinceFull;
      const sleep = wakeableSleep(clock, waiting().length ? Math.min(left, hostWatchMs) : left, signal);
      this.wakeRecheck = sleep.wake;
      const started = clock.now();
      await sleep.done;
      this.wakeRecheck = null;
      if (signal.aborted) break;
      sinceFull += clock.now() - started;
      if (sinceFull >= recheckIntervalMs) {
        sinceFull = 0;
        await this.reconcileAll();
      } else {
        await Promise.all(waiting().map(([id]) => this.reconcile(id)));
      }
    }
  }

  private async reportLoop(signal: AbortSignal): Promise<void> {
    let backoff = this.options.backoffInitialMs;
    while (!signal.aborted) {
      this.reporter.refreshStale();
      const ok = await this.reporter.flush();
      backoff = ok ? this.options.backoffInitialMs : Math.min(backoff * 2, this.options.backoffMaxMs);
      if (ok && this.reporter.pending) continue; // submitted while we were sending
      const wait = ok ? this.reporter.nextRefreshInMs() : backoff;
      if (wait === 0) continue; // a refresh is due now
      // While backing off, new reports wait for the backoff. A wake ends the sleep (its timer and
      // its listener on `signal` with it): one left running per wake piled up listeners.
      const sleep = wakeableSleep(this.options.clock, wait, signal);
      this.wakeReporter = ok ? sleep.wake : null;
      await sleep.done;
      this.wakeReporter = null;
    }
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return this.options.clock.sleep(ms, signal);
  }

  // ------------------------------------------------------------------ steps (public for tests)

  /** Registers when needed, reads the attachment list once and reconciles what changed. */
  async syncOnce(signal?: AbortSignal): Promise<void> {
    if (!this.registered) {
      const connector = await this.options.connectorProperties();
      const r = await this.options.service.register(connector);
      this.registered = true;
      this.log.info({ host: r.host }, 'registered with the service');
    }
    const list = await this.options.service.listAttachments(this.version, this.options.pollWaitSeconds, signal);
    const seen = new Set<string>();
    const changed: string[] = [];
    for (const att of list.attachments) {
      seen.add(att.id);
      const old = this.tracked.get(att.id);
      if (old && JSON.stringify(old.att) === JSON.stringify(att)) continue;
      // Parsed once per version: everything past here works with the spec.
      let spec: AttachSpec | null = null;
      try {
        spec = toAttachSpec(parseConnectionData(att.connection_info));
      } catch (e) {
        this.log.error({ attachment: att.id, err: (e as Error).message }, 'bad connection info');
      }
      this.tracked.set(att.id, track(att, spec, old, this.options.clock.now()));
      this.log.info(
        { attachment: att.id, desired: att.desired, connectedBy: att.connected_by ?? 'agent' },
        'attachment changed',
      );
      changed.push(att.id);
    }
    for (const id of [...this.tracked.keys()]) {
      if (seen.has(id)) continue;
      // Gone from the service: leave the kernel as it is (never drop a device on a list glitch).
      this.log.info({ attachment: id }, 'attachment no longer listed; left as it is');
      this.tracked.delete(id);
      this.reporter.forget(id);
    }
    // The secrets first: the connects these reconciles make read them from the nvme configuration.
    if (list.dhchap !== undefined || this.dhchap !== undefined) {
      const fresh = JSON.stringify(list.dhchap) !== JSON.stringify(this.dhchap);
      this.dhchap = list.dhchap;
      if (fresh || changed.length) await this.applyAuth();
    }
    for (const id of changed) void this.reconcile(id);
    this.version = list.version;
  }

  /**
   * Brings the host's nvme configuration and its controllers to the poll's secrets (host-auth.ts);
   * when a controller moved, every report goes again with its paths' new `auth_generation`, which
   * the service's rotation waits for. A failure is logged there and retried at the next recheck.
   */
  private applyAuth(): Promise<void> {
    // One pass at a time, each reading `this.dhchap` as it starts: else a recheck still writing the
    // old secret could land after the poll's new one, in config.json and sysfs. A call during a
    // pass waits for the one pass queued behind it, which applies the latest secrets.
    if (this.authQueued !== null) return this.authQueued;
    if (this.authRunning === null) return this.startAuthPass();
    const next = () => {
      this.authQueued = null;
      return this.startAuthPass();
    };
    // However the running pass ended (its caller has its error): a rejection must reset it too.
    const queued = this.authRunning.then(next, next);
    this.authQueued = queued;
    return queued;
  }

  private startAuthPass(): Promise<void> {
    const pass: Promise<void> = this.authPass().finally(() => {
      if (this.authRunning === pass) this.authRunning = null;
    });
    this.authRunning = pass;
    return pass;
  }

  private async authPass(): Promise<void> {
    if (!this.auth) return;
    const targets: AuthTarget[] = [...this.tracked.values()].flatMap((t) => neededBy(t)).flatMap((s) => s.targets);
    try {
      if (!(await this.auth.apply(this.dhchap, targets))) return;
    } catch (e) {
      // A host read that failed (EACCES, EIO): the attachments are still reconciled, and the
      // recheck tries again. The error names the file, never a secret.
      this.log.error({ err: (e as Error).message }, 'host secrets not applied; retried at the next recheck');
      return;
    }
    this.reporter.requeueAll();
    this.wakeReporterSoon();
  }

  /** Reconciles every known attachment and waits for it. */
  async reconcileAll(): Promise<void> {
    if (this.dhchap !== undefined) await this.applyAuth();
    await Promise.all([...this.tracked.keys()].map((id) => this.reconcile(id)));
  }

  /** One reconcile per attachment at a time; a request during a run schedules one more run. */
  reconcile(id: string): Promise<void> {
    const current = this.running.get(id);
    if (current !== undefined) {
      this.again.add(id);
      return current;
    }
    const p = (async () => {
      try {
        do {
          this.again.delete(id);
          await this.reconcileOnce(id);
        } while (this.again.has(id));
      } finally {
        this.running.delete(id);
      }
    })();
    this.running.set(id, p);
    return p;
  }

  private report(id: string, r: AttachmentReport, changed?: boolean): void {
    if (this.reporter.submit(id, r, changed)) this.wakeReporterSoon();
  }

  /**
   * Wakes the reporter on the next turn of the event loop, not in this one: the `connecting`
   * report is submitted just before the connect, and building its HTTP request would else run
   * ahead of the `nvme connect` spawns (the connect's path to them has no I/O wait to yield on).
   */
  private wakeReporterSoon(): void {
    if (this.wakeReporter) setImmediate(this.wakeReporter);
  }

  private async reconcileOnce(id: string): Promise<void> {
    const t = this.tracked.get(id);
    if (!t) return;
    if (!t.spec)
      return this.report(
        id,
        errorReport({ code: 'invalid_connection_info', message: 'connection info could not be parsed' }),
      );
    if (hostConnected(t)) {
      if (t.att.desired === 'connected') {
        const waited = t.awaitingHost;
        await this.assisted.live(id, t);
        // Now waiting for the host: the recheck loop shortens its sleep for it.
        if (t.awaitingHost && !waited) this.wakeRecheck?.();
        return;
      }
      if (!t.settled) await this.assisted.released(id, t);
      return;
    }
    if (t.att.desired === 'connected') return this.owned.connected(id, t.spec, t.att.size_gb, t.receivedAt);
    if (!t.settled) await this.owned.released(id, t);
  }

  /**
   * The connection data of every other attachment this host must keep connected (with the
   * portals a host-connected one's host connected, which the host's own controllers serve).
   */
  private othersThan(id: string): AttachSpec[] {
    return this.live(id).flatMap((o) => neededBy(o));
  }

  /** The portals other host-connected attachments were handed: os-brick's, never the agent's to connect. */
  private handedElsewhere(id: string): PortalSpec[] {
    return this.live(id)
      .filter(hostConnected)
      .flatMap((o) => o.hostPortals);
  }

  /** The other attachments the service wants connected on this host. */
  private live(id: string): Tracked[] {
    return [...this.tracked.values()].filter((o) => o.att.id !== id && o.att.desired === 'connected');
  }
}
