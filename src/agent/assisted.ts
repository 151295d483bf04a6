/**
 * The daemon's passes over host-connected attachments (docs/DECISIONS.md, "Who connects an
 * attachment"; the rules are in assist.ts). Each pass reads the host, and only ever adds the
 * portals the host was not handed, prunes dead stale controllers under the agent's own rules, or,
 * after terminate, removes what the agent added.
 */
import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import { HostAssist, addedPortals } from './assist.ts';
import type { AttachSpec, PortalSpec } from './connection-data.ts';
import type { Attacher, PathsResult } from './attacher.ts';
import { errorBody } from './errors.ts';
import { toWire } from './health.ts';
import type { AttachmentReport } from './service-client.ts';
import { type Tracked, isHostPortal, stillWanted } from './tracked.ts';

export interface AssistedDeps {
  attacher: Attacher;
  clock: Clock;
  /**
   * How long after the host's first controller the agent waits for the others before it reports
   * the device: os-brick connects the portals one after another.
   */
  hostSettleMs: number;
  log: Logger;
  report(id: string, r: AttachmentReport): void;
  /** What every other attachment this host must keep needs (its portals, and its host's). */
  others(id: string): AttachSpec[];
  /** The portals the host itself connects for its other live host-connected attachments. */
  othersHostPortals(id: string): PortalSpec[];
}

/** What the agent saw of the host's device, in a report. */
function observed(state: AttachmentReport['state'], p: PathsResult | null, withHealth: boolean): AttachmentReport {
  return {
    state,
    device_path: p?.devicePath ?? null,
    size_bytes: p?.devicePath ? p.sizeBytes : null,
    health: withHealth && p ? p.health : null,
    paths: p?.paths.map(toWire) ?? [],
    error: null,
  };
}

export class AssistedAttachments {
  private readonly assist: HostAssist;

  constructor(private readonly deps: AssistedDeps) {
    this.assist = new HostAssist(deps.attacher);
  }

  /**
   * A live host-connected attachment: `awaiting_host` until the host's device is there with a
   * controller of the host's, then `connected` with what the agent sees; `host_detached` once the
   * host let go of it (no controller of the host's is left), and nothing is connected again.
   */
  async live(id: string, t: Tracked): Promise<void> {
    const spec = t.spec!;
    const { log } = this.deps;
    try {
      let view = await this.assist.observe(spec, t.hostPortals);
      // The agent pruned the host's last (dead, stale) controller itself: the device is still the host's.
      if (view.hostControllers.length > 0) t.hostPruned = false;
      const hostThere = view.hostControllers.length > 0 || (t.hostPruned === true && view.paths.devicePath !== null);
      if (!hostThere) {
        // Seen with a controller of the host's before, and none left: the host let go of it. An
        // agent that never saw it (just started) cannot tell, and waits: controllers at other
        // portals may be another volume's (one subsystem per cluster), never proof of a detach.
        const detached = t.hostSeen === true;
        if (detached && !t.hostDetached) log.info({ attachment: id }, 'the host let go of the device; not reconnected');
        t.awaitingHost = !detached;
        t.hostDetached = detached;
        return this.deps.report(id, observed(detached ? 'host_detached' : 'awaiting_host', view.paths, false));
      }
      if (!view.paths.devicePath || this.stillConnecting(t, view.hostControllers.length)) {
        t.awaitingHost = true;
        return this.deps.report(id, observed('awaiting_host', view.paths, false));
      }
      t.awaitingHost = false;
      t.hostDetached = false;
      if (!t.hostSeen) log.info({ attachment: id, device: view.paths.devicePath }, 'the host connected the device');
      t.hostSeen = true;
      if (await this.followPortals(id, t)) view = await this.assist.observe(spec, t.hostPortals);
      this.deps.report(id, observed('connected', view.paths, true));
    } catch (e) {
      log.warn({ attachment: id, err: (e as Error).message }, 'host-connected attachment: pass failed');
      const now = await this.deps.attacher.getPaths(spec).catch(() => null);
      this.deps.report(id, { ...observed(now?.devicePath ? 'connected' : 'error', now, true), error: errorBody(e) });
    }
  }

  /**
   * The host is still connecting its portals (os-brick connects them one after another, each
   * `nvme connect` taking up to seconds): before the first report of its device, until each of
   * its portals has a controller (one for a single-path host) or `hostSettleMs` has passed since
   * the first appeared. Reported at once, an ordinary Nova attach showed `degraded` for seconds
   * (seen on the real kernel: 1 of 3 paths live 1.7 s into os-brick's connect, optimal at 4.3 s).
   */
  private stillConnecting(t: Tracked, hostControllers: number): boolean {
    if (t.hostSeen) return false;
    const wanted = t.spec!.mode === 'single' ? 1 : t.hostPortals.length;
    if (hostControllers >= wanted) return false;
    const now = this.deps.clock.now();
    t.hostConnectingSince ??= now;
    return now - t.hostConnectingSince < this.deps.hostSettleMs;
  }

  /**
   * Live paths on the host's device: the dead stale controllers go first (the agent's own rules:
   * never the last usable path, never one another attachment names; a dead one blocks the new
   * portal's connect with a duplicate cntlid, see daemon.ts), then the portals the host was not
   * handed are connected, then the live stale ones the agent added go. The host's own live
   * controllers stay: the host disconnects them. True when anything changed.
   */
  private async followPortals(id: string, t: Tracked): Promise<boolean> {
    const { attacher, log } = this.deps;
    const spec = t.spec!;
    const others = this.deps.others(id);
    let changed = false;
    if (t.stale.length) {
      const dead = await attacher.prunePortals(spec, t.stale, others, { deadOnly: true });
      if (dead.disconnected.length) {
        changed = true;
        log.info({ attachment: id, ...dead }, 'dead stale controllers removed from the host-connected device');
        // Only when that was the host's last one: its device then runs on paths the agent added.
        if ((await this.assist.observe(spec, t.hostPortals)).hostControllers.length === 0) t.hostPruned = true;
      }
    }
    // Not a portal the host connects for another of its attachments right now (one subsystem per
    // cluster: os-brick may be connecting it this moment, and the race is what this avoids).
    const hostsOwn = [...t.hostPortals, ...this.deps.othersHostPortals(id)];
    const { added, failures } = await this.assist.addPaths(spec, hostsOwn);
    if (added.length) {
      changed = true;
      log.info({ attachment: id, added }, 'paths the portal change brought added to the host-connected device');
    }
    if (failures.length) log.warn({ attachment: id, failures }, 'adding a path failed; retried on the next pass');
    const mine = t.stale.filter((p) => !isHostPortal(t, p));
    if (mine.length) {
      const pruned = await attacher.prunePortals(spec, mine, others);
      if (pruned.disconnected.length) changed = true;
      if (!pruned.pending) t.stale = t.stale.filter((p) => !mine.includes(p));
    }
    return changed;
  }

  /**
   * After terminate: the controllers the agent added (at the connection's portals and stale ones
   * outside the host's) go once nothing needs them; then the attachment is `disconnected`. The
   * host's own controllers and device are the host's (os-brick disconnected them before Cinder's
   * attachment_delete; a host that did not keeps them).
   */
  async released(id: string, t: Tracked): Promise<void> {
    const { log, report } = this.deps;
    const spec = t.spec!;
    const others = this.deps.others(id);
    if (stillWanted(spec, others)) {
      t.settled = true;
      return report(id, observed('disconnected', null, false));
    }
    const candidates = [...addedPortals(spec, t.hostPortals), ...t.stale].filter((p) => !isHostPortal(t, p));
    try {
      const res = await this.assist.release(spec, candidates, others, t.att.force);
      if (res.disconnected.length || res.kept.length)
        log.info({ attachment: id, disconnected: res.disconnected, kept: res.kept }, 'added controllers released');
      t.settled = res.kept.length === 0;
      report(id, observed('disconnected', null, false));
    } catch (e) {
      log.warn({ attachment: id, err: (e as Error).message }, 'added controllers not released; retried later');
      report(id, { ...observed('error', null, false), error: errorBody(e) });
    }
  }
}
