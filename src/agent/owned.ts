/**
 * The daemon's passes over agent-connected attachments (docs/DECISIONS.md, "Who connects an
 * attachment"): the agent connects the device, heals its paths, follows portal changes and
 * tears it down. Host-connected ones are assisted.ts's.
 */
import type { Clock } from '../shared/clock.ts';
import type { Logger } from '../shared/logger.ts';
import { GiB } from '../shared/units.ts';
import { type Attacher, type PathsResult, TeardownError } from './attacher.ts';
import type { AttachSpec } from './connection-data.ts';
import type { DaemonObserver } from './daemon.ts';
import { errorBody } from './errors.ts';
import type { RefusedPaths } from './host-auth.ts';
import { toWire } from './health.ts';
import type { AttachmentReport } from './service-client.ts';
import { type Tracked, stillWanted } from './tracked.ts';

export interface OwnedDeps {
  attacher: Attacher;
  clock: Clock;
  log: Logger;
  observer: DaemonObserver | undefined;
  connectingReportDelayMs: number;
  /** `changed`: send even when equal to the last report (its paths' `auth_generation` moved). */
  report(id: string, r: AttachmentReport, changed?: boolean): void;
  /** What every other attachment this host must keep needs. */
  others(id: string): AttachSpec[];
  tracked(id: string): Tracked | undefined;
  /** Controllers down on a secret the target no longer takes (host-auth.ts). */
  auth?: RefusedPaths;
}

export class OwnedAttachments {
  constructor(private readonly deps: OwnedDeps) {}

  async connected(id: string, spec: AttachSpec, sizeGb: number | undefined, receivedAt: number): Promise<void> {
    const c = this.deps.attacher;
    const started = this.deps.clock.now();
    let fresh = false;
    const connecting = new AbortController();
    try {
      // Adopt what is there: no "connecting" blip for a device that already works.
      const before = await c.getPaths(spec);
      fresh = !before.devicePath;
      if (fresh)
        void this.deps.clock.sleep(this.deps.connectingReportDelayMs, connecting.signal).then(() => {
          if (!connecting.signal.aborted) this.deps.report(id, stateReport('connecting'));
        });
      // A stale portal whose controller is no longer live (its node was readdressed: the old
      // port is gone) carries no I/O, and it blocks the new one: nvmet gives the new controller
      // the cntlid the old one had, and the host refuses a duplicate cntlid in one subsystem
      // (EINVAL; Linux drivers/nvme/host/core.c, nvme_validate_cntlid). It goes first, while the
      // volume has another live path.
      const tracked = this.deps.tracked(id);
      if (!fresh && tracked && tracked.spec === spec && tracked.stale.length) {
        const dead = await c.prunePortals(spec, tracked.stale, this.deps.others(id), { deadOnly: true });
        if (dead.disconnected.length)
          this.deps.log.info({ attachment: id, ...dead }, 'dead stale controllers removed first');
      }
      // A path that was down while the host's secret rotated reconnects with the secret it held,
      // which the target (one pair per host) refuses for ever; it is replaced by a new connect,
      // which reads the current secret from config.json, once the volume has another usable path.
      const refused = fresh ? undefined : await this.deps.auth?.refused(id, spec);
      const replaced = refused?.size ? await c.prunePortals(spec, [], this.deps.others(id), { refused }) : undefined;
      // Kept: the last usable path of a device, which nothing here can move (no secret is written to
      // a controller that is not live: host-auth.ts); the service does not rotate while a device has
      // no live path, so only a host cut off after the backend moved ends here.
      if (replaced?.disconnected.length || replaced?.kept.length)
        this.deps.log.warn({ attachment: id, ...replaced }, 'controllers refused on a retired secret');
      const connected = await c.connect(spec).finally(() => connecting.abort());
      let r: PathsResult = connected;
      if (fresh) {
        this.deps.observer?.connect('ok', this.deps.clock.now() - started);
        this.deps.log.info(
          {
            attachment: id,
            device: r.devicePath,
            health: r.health,
            elapsedMs: Math.round(connected.elapsedMs),
            sinceReceivedMs: Math.round(this.deps.clock.now() - receivedAt),
            trace: connected.trace,
          },
          'attached',
        );
      } else {
        const live = (p: PathsResult) => p.paths.filter((x) => x.state === 'live').length;
        const back = live(r) - live(before);
        if (back > 0) this.deps.observer?.pathsReconnected(back);
      }
      // Online extend: the service lists the volume's size; a smaller device gets a rescan
      // (targets without AER support never tell the host on their own).
      const wanted = sizeGb !== undefined ? sizeGb * GiB : null;
      if (wanted !== null && r.sizeBytes !== null && r.sizeBytes < wanted) {
        this.deps.log.info({ attachment: id, from: r.sizeBytes, to: wanted }, 'volume grew; rescanning');
        r = await c.extend(spec, wanted);
      }
      // The portals moved: the new ones are connected (above); the old ones go only now, and
      // only what no other attachment of this host needs.
      const t = this.deps.tracked(id);
      if (t && t.spec === spec && t.stale.length) {
        const pruned = await c.prunePortals(spec, t.stale, this.deps.others(id));
        if (!pruned.pending) {
          this.deps.log.info({ attachment: id, ...pruned }, 'portals that no longer serve the volume pruned');
          t.stale = [];
          r = { ...r, ...(await c.getPaths(spec)) } as PathsResult;
        }
      }
      this.deps.report(
        id,
        {
          state: 'connected',
          device_path: r.devicePath,
          size_bytes: r.sizeBytes,
          health: r.health,
          paths: r.paths.map(toWire),
          error: null,
        },
        // A replaced controller may take its predecessor's name: the report reads the same, its generation does not.
        Boolean(replaced?.disconnected.length),
      );
    } catch (e) {
      connecting.abort();
      if (fresh) this.deps.observer?.connect('failed', this.deps.clock.now() - started);
      this.deps.log.warn({ attachment: id, err: (e as Error).message }, 'connect failed; retried on the next pass');
      const now = await c.getPaths(spec).catch(() => null);
      if (now?.devicePath) {
        this.deps.report(id, {
          state: 'connected',
          device_path: now.devicePath,
          size_bytes: now.sizeBytes,
          health: now.health,
          paths: now.paths.map(toWire),
          error: errorBody(e),
        });
      } else {
        this.deps.report(id, {
          ...errorReport(errorBody(e)),
          paths: now?.paths.map(toWire) ?? [],
          health: now ? now.health : null,
        });
      }
    }
  }

  async released(id: string, t: Tracked): Promise<void> {
    const c = this.deps.attacher;
    const spec = t.spec!;
    const before = await c.getPaths(spec).catch(() => null);
    if (before?.devicePath && !t.refusedInUse)
      this.deps.report(id, {
        ...stateReport('disconnecting', before.devicePath),
        size_bytes: before.sizeBytes,
        health: before.health,
        paths: before.paths.map(toWire),
      });
    const others = this.deps.others(id);
    // The same volume is still wanted here (another instance of a multiattach volume, or a
    // re-attach that overtook this teardown): its device must stay, so there is nothing to undo.
    if (stillWanted(spec, others)) {
      this.deps.log.info(
        { attachment: id, volume: spec.volUuid },
        'volume still attached here through another attachment; device kept',
      );
      t.settled = true;
      return this.deps.report(id, stateReport('disconnected'));
    }
    const started = this.deps.clock.now();
    try {
      const res = await c.disconnect(spec, { force: t.att.force, otherAttachments: others });
      this.deps.observer?.disconnect('ok', this.deps.clock.now() - started);
      this.deps.log.info(
        {
          attachment: id,
          ...res,
          elapsedMs: Math.round(this.deps.clock.now() - started),
          sinceReceivedMs: Math.round(this.deps.clock.now() - t.receivedAt),
        },
        'detached',
      );
      // Controllers kept for another namespace are looked at again on later passes: once the
      // service revokes that namespace too, they go (no leftover controllers, os-brick #1961102).
      t.settled = res.kept.length === 0;
      this.deps.report(id, stateReport('disconnected'));
    } catch (e) {
      const refused = (e as { code?: unknown }).code === 'in_use';
      t.refusedInUse = refused;
      this.deps.observer?.disconnect(refused ? 'refused' : 'failed', this.deps.clock.now() - started);
      this.deps.log.warn(
        { attachment: id, err: (e as Error).message, ...(e instanceof TeardownError ? { done: e.result } : {}) },
        'detach not completed; retried on the next pass',
      );
      this.deps.report(id, {
        ...errorReport(errorBody(e), before?.devicePath ?? null),
        paths: before?.paths.map(toWire) ?? [],
      });
    }
  }
}

/** A report of `state` with nothing observed yet (no size, paths or health); callers add what they saw. */
export function stateReport(state: AttachmentReport['state'], devicePath: string | null = null): AttachmentReport {
  return { state, device_path: devicePath, size_bytes: null, health: null, paths: [], error: null };
}

/** An `error` report carrying the failure; callers add the paths they could still see. */
export function errorReport(
  error: NonNullable<AttachmentReport['error']>,
  devicePath: string | null = null,
): AttachmentReport {
  return { ...stateReport('error', devicePath), error };
}
