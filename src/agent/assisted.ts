/**
 * The daemon's passes over host-connected attachments (docs/DECISIONS.md, "Who connects an
 * attachment"; the rules are in assist.ts). Each pass reads the host, and only ever adds the
 * portals the host was not handed, prunes dead stale controllers under the agent's own rules, or,
 * after terminate, removes what the agent added.
 */
import type { ConnectionData } from '../driver/model.ts';
import type { Logger } from '../shared/logger.ts';
import { HostAssist, addedPortals, portalKey } from './assist.ts';
import { toAttachSpec } from './connection-data.ts';
import type { Connector, PathsResult } from './connector.ts';
import { errorBody } from './errors.ts';
import { toWire } from './health.ts';
import type { AttachmentReport } from './service-client.ts';
import type { Tracked } from './tracked.ts';

export interface AssistedDeps {
  connector: Connector;
  log: Logger;
  report(id: string, r: AttachmentReport): void;
  /** The connection data of every other attachment this host must keep. */
  others(id: string): ConnectionData[];
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
    this.assist = new HostAssist(deps.connector);
  }

  /**
   * A live host-connected attachment: `awaiting_host` until the host's device is there with a
   * controller of the host's, then `connected` with what the agent sees; `host_detached` once the
   * host let go of it (no controller of the host's is left), and nothing is connected again.
   */
  async live(id: string, t: Tracked): Promise<void> {
    const data = t.data!;
    const { log } = this.deps;
    try {
      let view = await this.assist.observe(data, t.hostPortals);
      const hostThere = view.hostControllers.length > 0 || (t.hostPruned === true && view.paths.devicePath !== null);
      if (!hostThere) {
        // Controllers the agent added are only ever added to a device the host had: with them
        // still there, or the device seen before, the host has let go of it.
        const detached = t.hostSeen === true || view.addedControllers.length > 0;
        t.awaitingHost = !detached;
        if (detached && !t.hostSeen) log.info({ attachment: id }, 'the host let go of the device; not reconnected');
        t.hostSeen = t.hostSeen || detached;
        return this.deps.report(id, observed(detached ? 'host_detached' : 'awaiting_host', view.paths, false));
      }
      if (!view.paths.devicePath) {
        t.awaitingHost = true;
        return this.deps.report(id, observed('awaiting_host', view.paths, false));
      }
      t.awaitingHost = false;
      if (!t.hostSeen) log.info({ attachment: id, device: view.paths.devicePath }, 'the host connected the device');
      t.hostSeen = true;
      if (await this.followPortals(id, t)) view = await this.assist.observe(data, t.hostPortals);
      this.deps.report(id, observed('connected', view.paths, true));
    } catch (e) {
      log.warn({ attachment: id, error: (e as Error).message }, 'host-connected attachment: pass failed');
      const now = await this.deps.connector.getPaths(data).catch(() => null);
      this.deps.report(id, { ...observed(now?.devicePath ? 'connected' : 'error', now, true), error: errorBody(e) });
    }
  }

  /**
   * Live paths on the host's device: the dead stale controllers go first (the agent's own rules:
   * never the last usable path, never one another attachment names; a dead one blocks the new
   * portal's connect with a duplicate cntlid, see daemon.ts), then the portals the host was not
   * handed are connected, then the live stale ones the agent added go. The host's own live
   * controllers stay: the host disconnects them. True when anything changed.
   */
  private async followPortals(id: string, t: Tracked): Promise<boolean> {
    const { connector, log } = this.deps;
    const data = t.data!;
    const others = this.deps.others(id);
    let changed = false;
    if (t.stale.length) {
      const hostKeys = new Set(t.hostPortals.map(portalKey));
      const dead = await connector.prunePortals(data, t.stale, others, { deadOnly: true });
      if (dead.disconnected.length) {
        changed = true;
        if (t.stale.some((p) => hostKeys.has(portalKey(p)))) t.hostPruned = true;
        log.info({ attachment: id, ...dead }, 'dead stale controllers removed from the host-connected device');
      }
    }
    const { added, failures } = await this.assist.addPaths(data, t.hostPortals);
    if (added.length) {
      changed = true;
      log.info({ attachment: id, added }, 'paths the portal change brought added to the host-connected device');
    }
    if (failures.length) log.warn({ attachment: id, failures }, 'adding a path failed; retried on the next pass');
    const mine = t.stale.filter((p) => !t.hostPortals.some((h) => portalKey(h) === portalKey(p)));
    if (mine.length) {
      const pruned = await connector.prunePortals(data, mine, others);
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
    const data = t.data!;
    const spec = toAttachSpec(data);
    const candidates = [...addedPortals(spec, t.hostPortals), ...t.stale].filter(
      (p) => !t.hostPortals.some((h) => portalKey(h) === portalKey(p)),
    );
    try {
      const res = await this.assist.release(data, candidates, this.deps.others(id), t.att.force);
      if (res.disconnected.length || res.kept.length)
        log.info({ attachment: id, disconnected: res.disconnected, kept: res.kept }, 'added controllers released');
      t.settled = res.kept.length === 0;
      report(id, observed('disconnected', null, false));
    } catch (e) {
      log.warn({ attachment: id, error: (e as Error).message }, 'added controllers not released; retried later');
      report(id, { ...observed('error', null, false), error: errorBody(e) });
    }
  }
}
