/**
 * The host connector: connect / disconnect / extend / getPaths for one volume, whatever its
 * multipath mode. The CLI and the daemon both go through this class. Every operation holds the
 * lock of each subsystem NQN it touches, so connects and disconnects on one subsystem never
 * interleave while different subsystems proceed in parallel: a disconnect racing a connect on the
 * same subsystem can remove the controller a volume being attached right now needs (Lightbits'
 * los-csi, `pkg/driver/node.go`: "disconnecting a volume that just got mounted").
 * One agent process runs per host (the daemon, or a CLI attach/detach); the lock is in-process,
 * so the CLI must not be run while the daemon manages the same volume.
 */
import { type Logger, silentLogger } from '../shared/logger.ts';
import { KeyedMutex } from '../shared/keyed-mutex.ts';
import { poll } from '../shared/poll.ts';
import { type AttachSpec, type PortalSpec, type TargetSpec, portalLabel } from './connection-data.ts';
import type { AgentContext } from './context.ts';
import { AgentError } from './errors.ts';
import { type Health, type ObservedPath, anaCarriesIo } from './health.ts';
import type { HostPort } from './host/port.ts';
import { locateDm, locateDmMap, removeMap } from './multipath/dm.ts';
import { locateNative } from './multipath/native.ts';
import { strategyFor } from './multipath/strategy.ts';
import { DEFAULT_TUNABLES, type ConnectTunables } from './nvme-cli.ts';
import { portalKey, portalStates, rescan, servesPortal } from './portals.ts';
import { traced } from './context.ts';
import { identify, isMatch, wantOf } from './identity.ts';
import {
  type BlockNamespace,
  type Controller,
  listControllers,
  namespacesUnderController,
  readBlockNamespace,
  usedThrough,
} from './sysfs.ts';
import { deviceUsage, describeUsage, disconnectController, flush, isInUse } from './teardown.ts';
import { Trace, type TraceStep } from './trace.ts';

export interface ConnectorOptions {
  tunables?: ConnectTunables;
  iopolicy?: string;
  deviceTimeoutMs?: number;
  commandTimeoutMs?: number;
  log?: Logger;
  locks?: KeyedMutex;
}

export interface ConnectResult {
  devicePath: string;
  sizeBytes: number | null;
  paths: ObservedPath[];
  health: Health;
  elapsedMs: number;
  /** Each step with its start and duration (ms since the call began). */
  trace: TraceStep[];
}

export interface PathsResult {
  devicePath: string | null;
  sizeBytes: number | null;
  paths: ObservedPath[];
  health: Health;
}

export interface DisconnectOptions {
  force?: boolean;
  /**
   * Every other attachment this host must keep (the daemon passes them all). When given it is
   * taken as complete: a visible namespace of none of them that nothing uses does not keep a
   * controller. When absent (the CLI), any other visible namespace keeps it.
   */
  otherAttachments?: AttachSpec[];
  /**
   * A host-connected attachment (docs/DECISIONS.md, "Who connects an attachment"): only the
   * controllers at these portals, the ones the agent added, are candidates, and no sweep of
   * controllers nobody names runs (the host's own are the host's). With none of them there, the
   * device is not touched either.
   */
  onlyAt?: PortalSpec[];
}

export interface DisconnectResult {
  /** The volume's devices found (head/plain namespaces, or the DM map). */
  devices: string[];
  flushed: string[];
  removedMaps: string[];
  disconnected: string[];
  kept: { controller: string; reason: string }[];
  errors: { code: string; message: string }[];
  /** Each step with its start and duration (ms since the call began). */
  trace: TraceStep[];
}

/** Thrown when a teardown step failed; carries everything that was and was not done. */
export class TeardownError extends AggregateError {
  constructor(
    readonly result: DisconnectResult,
    errors: unknown[],
  ) {
    super(errors, `teardown incomplete: ${result.errors.map((e) => e.message).join('; ')}`);
    this.name = 'TeardownError';
  }
}

export class Connector {
  readonly ctx: AgentContext;
  readonly locks: KeyedMutex;

  constructor(
    readonly host: HostPort,
    opts: ConnectorOptions = {},
  ) {
    const tunables = opts.tunables ?? DEFAULT_TUNABLES;
    this.ctx = {
      host,
      log: opts.log ?? silentLogger,
      tunables,
      iopolicy: opts.iopolicy,
      // os-brick's bound for a reconnecting portal: 10 s + reconnect_delay.
      deviceTimeoutMs: opts.deviceTimeoutMs ?? (10 + Math.max(tunables.reconnectDelay, 0)) * 1000,
      commandTimeoutMs: opts.commandTimeoutMs ?? 60_000,
    };
    this.locks = opts.locks ?? new KeyedMutex();
  }

  private keys(spec: AttachSpec): string[] {
    return spec.targets.map((t) => t.nqn);
  }

  /** The host NQN controllers are matched on: the connection's, else /etc/nvme/hostnqn. */
  async hostNqn(spec: AttachSpec): Promise<string | null> {
    return spec.hostNqn ?? (await this.host.readFile('/etc/nvme/hostnqn'))?.trim() ?? null;
  }

  /**
   * Makes the volume's device present and returns it. Idempotent: live portals are kept as they
   * are (adopted), missing ones connected, so calling it again is how failed portals get retried
   * and lost paths come back (self-healing).
   *
   * `undoOnFailure` (the one-shot CLI, which nobody retries): when the attach fails, the
   * controllers this call created and nothing else needs are disconnected again before the error
   * is thrown. The daemon keeps them: its next pass retries from there (docs/DECISIONS.md, "A
   * failed attach: the CLI undoes, the daemon keeps").
   */
  async connect(spec: AttachSpec, opts: { undoOnFailure?: boolean } = {}): Promise<ConnectResult> {
    const started = this.host.clock.now();
    const trace = new Trace(this.host.clock);
    const ctx = { ...this.ctx, trace };
    trace.mark('lock wait');
    return this.locks.runAll(this.keys(spec), async () => {
      trace.mark('locked');
      const hostNqn = await this.hostNqn(spec);
      const before = opts.undoOnFailure ? await this.controllerNames(spec) : null;
      try {
        const r = await strategyFor(spec).attach(ctx, spec, hostNqn);
        if (!r.devicePath)
          throw new AgentError(
            'device_not_found',
            `the device of volume ${spec.volUuid} vanished right after it appeared`,
            { details: { paths: r.paths } },
          );
        return {
          devicePath: r.devicePath,
          sizeBytes: r.sizeBytes,
          paths: r.paths,
          health: r.health,
          elapsedMs: this.host.clock.now() - started,
          trace: trace.steps,
        };
      } catch (e) {
        if (before) await this.undoConnect(ctx, spec, hostNqn, before);
        throw e;
      }
    });
  }

  private async controllerNames(spec: AttachSpec): Promise<Set<string>> {
    const lists = await Promise.all(spec.targets.map((t) => listControllers(this.host, t.nqn)));
    return new Set(lists.flat().map((c) => c.name));
  }

  /**
   * Disconnects what a failed attach created: controllers of the spec's portals that were not
   * there before it, unless another namespace behind one is in use and usable through none of
   * the controllers that were there before (then the new path is what that device runs on). A
   * step that fails is logged; the attach's own error is what the caller gets.
   */
  private async undoConnect(ctx: AgentContext, spec: AttachSpec, hostNqn: string | null, before: Set<string>) {
    for (const t of spec.targets) {
      const ctrls = await listControllers(this.host, t.nqn);
      const old = ctrls.filter((c) => before.has(c.name));
      for (const c of ctrls) {
        if (before.has(c.name) || !t.portals.some((p) => servesPortal(c, p, hostNqn))) continue;
        try {
          const reason = await this.neededBeyond(c, t, old);
          if (reason) {
            ctx.log.info({ controller: c.name, reason }, 'failed attach: controller kept');
            continue;
          }
          if (spec.mode === 'dm') await this.delPaths(await namespacesUnderController(this.host, c.name));
          await disconnectController(ctx, c);
          ctx.log.info({ controller: c.name }, 'failed attach: controller it created disconnected');
        } catch (e) {
          ctx.log.warn({ controller: c.name, error: (e as Error).message }, 'failed attach: undo step failed');
        }
      }
    }
  }

  /** Where the volume is now and how its paths are, without changing anything. */
  async getPaths(spec: AttachSpec): Promise<PathsResult> {
    const hostNqn = await this.hostNqn(spec);
    const r = await strategyFor(spec).locate(this.ctx, spec, hostNqn);
    return { devicePath: r.devicePath, sizeBytes: r.sizeBytes, paths: r.paths, health: r.health };
  }

  /**
   * After the volume grew: rescan its live controllers (no AEN on some targets) and wait for the
   * device size to reach `expectedBytes` (or just to change) before the deadline.
   */
  async extend(spec: AttachSpec, expectedBytes?: number): Promise<PathsResult> {
    return this.locks.runAll(this.keys(spec), async () => {
      const hostNqn = await this.hostNqn(spec);
      const before = await this.getPaths(spec);
      const states = (await Promise.all(spec.targets.map((t) => portalStates(this.ctx, t, hostNqn)))).flat();
      await rescan(
        this.ctx,
        states.flatMap((s) => (s.controller?.state === 'live' ? [s.controller.name] : [])),
      );
      // DM: the map keeps its table's size until multipathd reloads it, and that only helps once
      // every path device shows the new size (ns-rescan only queues the kernel's scan).
      let resizedTo = -1;
      const resizeMapWhenPathsGrew = async () => {
        if (spec.mode !== 'dm') return;
        const loc = await locateDm(this.ctx, spec, hostNqn);
        const sizes = loc.devices.map((d) => d.sizeBytes ?? 0);
        const paths = sizes.length ? Math.min(...sizes) : 0;
        if (!loc.map || paths <= (loc.sizeBytes ?? 0) || paths === resizedTo) return;
        resizedTo = paths;
        await this.host.run('multipathd', ['resize', 'map', loc.map.name], { timeoutMs: this.ctx.commandTimeoutMs });
      };
      const r = await poll<PathsResult>(
        async () => {
          await resizeMapWhenPathsGrew();
          const now = await this.getPaths(spec);
          const grown =
            expectedBytes !== undefined ? (now.sizeBytes ?? 0) >= expectedBytes : now.sizeBytes !== before.sizeBytes;
          return grown ? { done: true, value: now } : { done: false, last: now };
        },
        {
          deadlineMs: this.ctx.deviceTimeoutMs,
          intervalMs: 200,
          backoff: 1.5,
          maxIntervalMs: 1000,
          clock: this.host.clock,
        },
      );
      return r.done ? r.value : (r.last as PathsResult);
    });
  }

  /**
   * Flushes and removes the volume's device and disconnects the controllers nothing else needs.
   * Refuses (in_use, nothing done) while the device is open, mounted, swapped on or held,
   * unless forced. Every other failure is collected and thrown at the end as a TeardownError.
   * Not an error when the volume is not attached.
   */
  async disconnect(spec: AttachSpec, opts: DisconnectOptions = {}): Promise<DisconnectResult> {
    const trace = new Trace(this.host.clock);
    const ctx = { ...this.ctx, trace };
    trace.mark('lock wait');
    return this.locks.runAll(this.keys(spec), async () => {
      trace.mark('locked');
      const hostNqn = await this.hostNqn(spec);
      const res: DisconnectResult = {
        devices: [],
        flushed: [],
        removedMaps: [],
        disconnected: [],
        kept: [],
        errors: [],
        trace: trace.steps,
      };
      const errors: unknown[] = [];
      const fail = (e: unknown) => {
        errors.push(e);
        res.errors.push({ code: e instanceof AgentError ? e.code : 'teardown_failed', message: (e as Error).message });
      };
      // A failed flush stops a normal detach before anything is removed; a forced one goes on.
      const flushTop = async (path: string) => {
        try {
          await traced(ctx, `blockdev --flushbufs ${path}`, () => flush(ctx, path));
          res.flushed.push(path);
        } catch (e) {
          if (!opts.force) throw e;
          fail(e);
        }
      };

      // A host-connected volume without a controller the agent added: nothing here is the agent's.
      if (opts.onlyAt) {
        const mine = await Promise.all(
          spec.targets.map(async (t) =>
            (await listControllers(this.host, t.nqn)).some((c) => candidate(c, t, hostNqn, opts.onlyAt)),
          ),
        );
        if (!mine.includes(true)) return res;
      }

      // 1. The device on top: refuse while in use, then flush (and for DM remove the map).
      if (spec.mode === 'dm') {
        const loc = await traced(ctx, 'sysfs: locate', () => locateDmMap(ctx, spec));
        const top = loc.map
          ? [{ block: loc.map.dm, path: `/dev/mapper/${loc.map.name}` }]
          : loc.devices.map((d) => ({ block: d.name, path: `/dev/${d.name}` }));
        await traced(ctx, 'in-use check', () => this.refuseIfUsed(top, opts.force, res));
        if (loc.map) {
          await flushTop(`/dev/mapper/${loc.map.name}`);
          try {
            await traced(ctx, `remove map ${loc.map.name}`, () => removeMap(ctx, loc.map!, !!opts.force));
            res.removedMaps.push(loc.map.name);
          } catch (e) {
            fail(e);
            // Never pull the paths from under a map that is still there.
            throw new TeardownError(res, errors);
          }
        }
      } else {
        // Every match: with nvme_core.multipath=N each controller has its own plain device.
        const { devices } = await traced(ctx, 'sysfs: locate', () => locateNative(ctx, spec, hostNqn));
        await traced(ctx, 'in-use check', () =>
          this.refuseIfUsed(
            devices.map((d) => ({ block: d.name, path: `/dev/${d.name}` })),
            opts.force,
            res,
          ),
        );
        for (const d of devices) await flushTop(`/dev/${d.name}`);
      }

      // 2. Controllers: only those nothing else needs. One at a time: `nvme disconnect`
      // (nvme-cli 2.3 / libnvme 1.3) scans all of sysfs first and aborts when a controller
      // directory vanishes under that scan (libnvme #840), as it does while another one goes.
      // With every attachment of the host known (the daemon), a controller of the subsystem that
      // no attachment's portals name goes too, unless something behind it is in use: one kept
      // earlier for another volume whose namespace was visible through it (nvmet shows every
      // namespace of the subsystem through every port, and native multipath or multipathd takes
      // that path into the other volume's device) would else be left once that volume is detached
      // through its own portals, which never name it.
      const complete = opts.otherAttachments !== undefined;
      const others = otherUsers(opts.otherAttachments ?? []);
      for (const t of spec.targets) {
        const ctrls = (await traced(ctx, 'sysfs: controllers', () => listControllers(this.host, t.nqn))).filter(
          (c) =>
            candidate(c, t, hostNqn, opts.onlyAt) ||
            (complete && !opts.onlyAt && !others.some((o) => o.nqn === c.nqn && servesPortal(c, o.portal, hostNqn))),
        );
        for (const c of ctrls) {
          const reason = await traced(
            ctx,
            `keep check ${c.name}`,
            () => this.keepReason(c, t, others, hostNqn, complete),
            (r) => r ?? undefined,
          );
          if (reason) {
            res.kept.push({ controller: c.name, reason });
            continue;
          }
          try {
            await disconnectController(ctx, c);
            res.disconnected.push(c.name);
          } catch (e) {
            fail(e);
          }
        }
      }
      if (errors.length) throw new TeardownError(res, errors);
      return res;
    });
  }

  /**
   * After the volume's portals changed (a replica moved, a node was readdressed): disconnects the
   * controllers of `stale` portals, which no longer serve it, once it is served by a live path
   * of its current portals (never the last live path). A controller another attachment of this
   * host still uses, or that carries another namespace in use, stays: every volume of a cluster
   * shares one subsystem, so one controller per node carries all volumes served through it.
   * In DM mode the stale path device leaves the map first (`multipathd del path`), so the map
   * never holds a path whose controller is gone. Returns what it did; `pending` is true when
   * nothing could be pruned yet (no live path at the current portals).
   */
  async prunePortals(
    spec: AttachSpec,
    stale: PortalSpec[],
    otherAttachments: AttachSpec[],
    opts: { deadOnly?: boolean } = {},
  ): Promise<{ disconnected: string[]; kept: { controller: string; reason: string }[]; pending: boolean }> {
    return this.locks.runAll(this.keys(spec), async () => {
      const hostNqn = await this.hostNqn(spec);
      const out = {
        disconnected: [] as string[],
        kept: [] as { controller: string; reason: string }[],
        pending: false,
      };
      const now = await strategyFor(spec).locate(this.ctx, spec, hostNqn);
      // DM mode: multipathd's view of a path does not matter here, a live controller is a path.
      const usable = now.paths.filter((p) => p.state === 'live' && (spec.mode === 'dm' || anaCarriesIo(p.anaState)));
      if (!now.devicePath || usable.length === 0) {
        out.pending = true;
        return out;
      }
      const current = spec.targets.flatMap((t) => t.portals);
      const gone = stale.filter((p) => !current.some((c) => portalKey(c) === portalKey(p)));
      const others = otherUsers(otherAttachments);
      for (const t of spec.targets) {
        const ctrls = await listControllers(this.host, t.nqn);
        for (const c of ctrls) {
          if (!gone.some((p) => servesPortal(c, p, hostNqn))) continue;
          // A controller that also matches a current portal is a current path, whatever it was.
          if (current.some((p) => servesPortal(c, p, hostNqn))) continue;
          if (opts.deadOnly && c.state === 'live') continue;
          const reason = await this.keepReason(c, t, others, hostNqn, true, ctrls);
          const behind = spec.mode === 'dm' ? await namespacesUnderController(this.host, c.name) : [];
          if (reason) {
            out.kept.push({ controller: c.name, reason });
            // The controller stays for another volume, but this volume's path device behind it
            // leaves this volume's map: the backend no longer serves the volume there (its ANA
            // group is inaccessible), and multipathd would keep it in the map as a path that
            // never carries I/O.
            const own: string[] = [];
            for (const ns of behind) {
              const bn = await readBlockNamespace(this.host, ns);
              if (bn && identify(bn, { uuid: t.uuid }) === 'uuid') own.push(ns);
            }
            await this.delPaths(own);
            continue;
          }
          // Every path device behind it leaves its map first, this volume's and any other's
          // that keepReason let go (a dead path of a volume with another usable one).
          await this.delPaths(behind);
          await disconnectController(this.ctx, c);
          out.disconnected.push(c.name);
        }
      }
      return out;
    });
  }

  /** DM mode: `multipathd del path` for each path device, so no map keeps a path about to go. */
  private async delPaths(names: string[]): Promise<void> {
    for (const ns of names) {
      const r = await this.host.run('multipathd', ['del', 'path', ns], { timeoutMs: this.ctx.commandTimeoutMs });
      if (r.code !== 0) this.ctx.log.warn({ path: ns, error: r.stderr.trim() }, 'multipathd del path failed');
    }
  }

  private async refuseIfUsed(
    devs: { block: string; path: string }[],
    force: boolean | undefined,
    res: DisconnectResult,
  ): Promise<void> {
    for (const d of devs) {
      res.devices.push(d.path);
      const u = await deviceUsage(this.host, d.block, [d.path]);
      if (!isInUse(u)) continue;
      if (!force)
        throw new AgentError('in_use', `refusing to detach: ${describeUsage(d.path, u)}`, { details: { ...u } });
      this.ctx.log.warn({ device: d.path, usage: u }, 'forced detach of a device in use');
    }
  }

  /**
   * Why a controller must stay: another attachment on this host uses the same subsystem and
   * portal (its namespace may not even be visible yet), or another namespace behind it is in
   * use (open, mounted, held): `nvme disconnect` would take that volume's path too.
   *
   * Whether a namespace that is merely visible keeps the controller depends on what the caller
   * knows. The daemon passes every attachment the service wants on this host (`complete`):
   * then a visible namespace nobody wants and nobody uses does not keep it, since on a shared
   * subsystem a detached volume's namespace can stay visible (an ACL change does not always
   * reach the host at once, and nvmet's ACL is per subsystem) and counting it would leak the
   * controllers for good (os-brick bug #1961102's leftover controllers). A caller without that
   * knowledge (the CLI) keeps the controller for any other visible namespace, as os-brick does:
   * an attached but idle volume must not lose its paths.
   *
   * A stale controller (the prune passes `staleAmong`, the subsystem's controllers: no current
   * portal of this volume names it, nor any other attachment's) is not kept by another
   * volume's namespace that is unusable through it (the controller is not live, or the
   * namespace's ANA state there is neither optimized nor non-optimized) while that volume has a
   * usable path through another controller. After a node is readdressed, the controller to its
   * old address is dead and carries every volume served through that node; kept for the sake of
   * a volume whose head is open, it would stay forever, and the connect to the new address would
   * keep failing with EINVAL: nvmet hands the new association the dead one's controller ID, and
   * the host refuses a second controller with the same ID in one subsystem
   * (drivers/nvme/host/core.c `nvme_validate_cntlid`, "Duplicate cntlid").
   */
  private async keepReason(
    c: Controller,
    t: TargetSpec,
    others: OtherUsers,
    hostNqn: string | null,
    complete: boolean,
    staleAmong?: Controller[],
  ): Promise<string | null> {
    const user = others.find((o) => o.nqn === c.nqn && servesPortal(c, o.portal, hostNqn));
    if (user)
      return `another attachment on this host (volume ${user.volUuid}) uses ${c.nqn} via ${portalLabel(user.portal)}`;
    const want = wantOf(t);
    const busy: string[] = [];
    for (const name of await namespacesUnderController(this.host, c.name)) {
      const ns = await readBlockNamespace(this.host, name);
      if (!ns || isMatch(identify(ns, want))) continue;
      if (!complete) {
        busy.push(`/dev/${name} (visible; this caller does not know which attachments the host has)`);
        continue;
      }
      if (staleAmong && !usableThrough(c, ns) && (await this.usableElsewhere(ns, c, staleAmong))) continue;
      const top = usedThrough(name);
      const usage = await deviceUsage(this.host, top, [`/dev/${top}`]);
      if (isInUse(usage)) busy.push(describeUsage(`/dev/${top}`, usage));
    }
    if (busy.length) return `other namespaces behind it: ${busy.join('; ')}`;
    return null;
  }

  /** An in-use namespace behind `c`, other than the target's, that no controller of `others` serves usably. */
  private async neededBeyond(c: Controller, t: TargetSpec, others: Controller[]): Promise<string | null> {
    const want = wantOf(t);
    for (const name of await namespacesUnderController(this.host, c.name)) {
      const ns = await readBlockNamespace(this.host, name);
      if (!ns || isMatch(identify(ns, want)) || (await this.usableElsewhere(ns, c, others))) continue;
      const top = usedThrough(name);
      const usage = await deviceUsage(this.host, top, [`/dev/${top}`]);
      if (isInUse(usage)) return `other namespace in use only through it: ${describeUsage(`/dev/${top}`, usage)}`;
    }
    return null;
  }

  /** Whether the namespace `ns` (behind `c`) is usable through another controller of its subsystem. */
  private async usableElsewhere(ns: BlockNamespace, c: Controller, ctrls: Controller[]): Promise<boolean> {
    for (const o of ctrls) {
      if (o.name === c.name || o.nqn !== c.nqn || o.state !== 'live') continue;
      for (const name of await namespacesUnderController(this.host, o.name)) {
        const other = await readBlockNamespace(this.host, name);
        // NSIDs are unique within a subsystem (NVMe Base Specification §3.2.1).
        if (other && other.nsid === ns.nsid && usableThrough(o, other)) return true;
      }
    }
    return false;
  }
}

/** A path is usable when its controller is live and its ANA state carries I/O (unknown: DM mode, no ANA). */
function usableThrough(c: Controller, ns: BlockNamespace): boolean {
  return c.state === 'live' && anaCarriesIo(ns.anaState);
}

/** A controller a teardown looks at: one of the target's portals, or of `onlyAt` when given. */
function candidate(c: Controller, t: TargetSpec, hostNqn: string | null, onlyAt?: PortalSpec[]): boolean {
  return (onlyAt ?? t.portals).some((p) => servesPortal(c, p, hostNqn));
}

type OtherUsers = { nqn: string; portal: PortalSpec; volUuid: string }[];

function otherUsers(specs: AttachSpec[]): OtherUsers {
  return specs.flatMap((spec) =>
    spec.targets.flatMap((t) => t.portals.map((portal) => ({ nqn: t.nqn, portal, volUuid: spec.volUuid }))),
  );
}
