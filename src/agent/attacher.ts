/**
 * The attacher: connect / disconnect / extend / getPaths for one volume, whatever its
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
import type { AttachSpec, PortalSpec } from './connection-data.ts';
import type { AgentContext } from './context.ts';
import { AgentError } from './errors.ts';
import type { Health, ObservedPath } from './health.ts';
import { readHostNqn } from './connector-properties.ts';
import type { HostPort } from './host/port.ts';
import { locateDm, removeMap } from './multipath/dm.ts';
import { strategyFor } from './multipath/strategy.ts';
import { type PruneResult, delPaths, prunePortals } from './prune.ts';
import { DEFAULT_TUNABLES, type ConnectTunables } from './nvme-cli.ts';
import { portalStates, rescan, servesPortal } from './portals.ts';
import { traced } from './context.ts';
import { listControllers, namespacesUnderController } from './sysfs.ts';
import { describeUsage, disconnectController, flush } from './teardown.ts';
import { candidate, factOf, neededBeyond, otherUsers, topDevices } from './teardown-snapshot.ts';
import { type ControllerFact, planControllers, planDevice } from './teardown-plan.ts';
import { Trace, type TraceStep } from './trace.ts';

export interface AttacherOptions {
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

export class Attacher {
  readonly ctx: AgentContext;
  readonly locks: KeyedMutex;

  constructor(
    readonly host: HostPort,
    opts: AttacherOptions = {},
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

  /**
   * Runs `fn` holding the locks of the spec's subsystems, with the host NQN controllers are
   * matched on and a trace that starts before the lock wait (so the wait shows in it).
   */
  private underLocks<T>(
    spec: AttachSpec,
    fn: (ctx: AgentContext, hostNqn: string | null, trace: Trace) => Promise<T>,
  ): Promise<T> {
    const trace = new Trace(this.host.clock);
    const ctx = { ...this.ctx, trace };
    trace.mark('lock wait');
    return this.locks.runAll(this.keys(spec), async () => {
      trace.mark('locked');
      return fn(ctx, await this.hostNqn(spec), trace);
    });
  }

  private keys(spec: AttachSpec): string[] {
    return spec.targets.map((t) => t.nqn);
  }

  /** The host NQN controllers are matched on: the connection's, else /etc/nvme/hostnqn. */
  async hostNqn(spec: AttachSpec): Promise<string | null> {
    return spec.hostNqn ?? (await readHostNqn(this.host));
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
    return this.underLocks(spec, async (ctx, hostNqn, trace) => {
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
          const reason = await neededBeyond(this.host, c, t, old);
          if (reason) {
            ctx.log.info({ controller: c.name, reason }, 'failed attach: controller kept');
            continue;
          }
          if (spec.mode === 'dm') await delPaths(ctx, await namespacesUnderController(this.host, c.name));
          await disconnectController(ctx, c);
          ctx.log.info({ controller: c.name }, 'failed attach: controller it created disconnected');
        } catch (e) {
          ctx.log.warn({ controller: c.name, err: (e as Error).message }, 'failed attach: undo step failed');
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
    return this.underLocks(spec, async (ctx, hostNqn, trace) => {
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
      // A host-connected volume without a controller the agent added: nothing here is the agent's.
      if (opts.onlyAt) {
        const mine = await Promise.all(
          spec.targets.map(async (t) =>
            (await listControllers(this.host, t.nqn)).some((c) => candidate(c, t, hostNqn, opts.onlyAt)),
          ),
        );
        if (!mine.includes(true)) return res;
      }

      // 1. The device on top (teardown-plan.ts `planDevice`): refused while in use unless forced,
      // flushed, and for DM the map removed.
      const { top, map } = await traced(ctx, 'sysfs: locate', () => topDevices(ctx, spec, hostNqn));
      res.devices.push(...top.map((d) => d.path));
      const device = planDevice(top, map, !!opts.force);
      if (device.refused) {
        const { path, usage } = device.refused;
        throw new AgentError('in_use', `refusing to detach: ${describeUsage(path, usage)}`, { details: { ...usage } });
      }
      for (const d of device.forcedPast)
        ctx.log.warn({ device: d.path, usage: d.usage }, 'forced detach of a device in use');
      for (const step of device.steps) {
        if (step.kind === 'flush') {
          try {
            await traced(ctx, `blockdev --flushbufs ${step.path}`, () => flush(ctx, step.path));
            res.flushed.push(step.path);
          } catch (e) {
            // A failed flush stops a normal detach before anything is removed; a forced one goes on.
            if (!opts.force) throw e;
            fail(e);
          }
        } else if (step.kind === 'remove-map') {
          try {
            await traced(ctx, `remove map ${step.map.name}`, () => removeMap(ctx, step.map, !!opts.force));
            res.removedMaps.push(step.map.name);
          } catch (e) {
            fail(e);
            // Never pull the paths from under a map that is still there.
            throw new TeardownError(res, errors);
          }
        }
      }

      // 2. Controllers (`planControllers`): only those nothing else needs. With every attachment of
      // the host known (the daemon), a controller of the subsystem that no attachment's portals
      // name goes too, unless something behind it is in use: one kept earlier for another volume
      // whose namespace was visible through it (nvmet shows every namespace of the subsystem
      // through every port, and native multipath or multipathd takes that path into the other
      // volume's device) would else be left once that volume is detached through its own portals,
      // which never name it.
      const complete = opts.otherAttachments !== undefined;
      const others = otherUsers(opts.otherAttachments ?? []);
      const facts: ControllerFact[] = [];
      // DM: the replicas are targets of one subsystem, so a controller no attachment names is a
      // candidate of every target; it is decided (and disconnected) once.
      const seen = new Set<string>();
      for (const t of spec.targets) {
        const ctrls = (await traced(ctx, 'sysfs: controllers', () => listControllers(this.host, t.nqn))).filter(
          (c) =>
            !seen.has(c.name) &&
            (candidate(c, t, hostNqn, opts.onlyAt) ||
              (complete && !opts.onlyAt && !others.some((o) => o.nqn === c.nqn && servesPortal(c, o.portal, hostNqn)))),
        );
        for (const c of ctrls) seen.add(c.name);
        for (const c of ctrls)
          facts.push(
            await traced(ctx, `keep check ${c.name}`, () => factOf(this.host, c, t, others, hostNqn, complete)),
          );
      }
      const plan = planControllers(facts, complete);
      res.kept.push(...plan.kept);
      for (const step of plan.steps) {
        if (step.kind !== 'disconnect') continue;
        try {
          await disconnectController(ctx, step.controller);
          res.disconnected.push(step.controller.name);
        } catch (e) {
          fail(e);
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
  prunePortals(
    spec: AttachSpec,
    stale: PortalSpec[],
    otherAttachments: AttachSpec[],
    opts: { deadOnly?: boolean; refused?: Set<string> } = {},
  ): Promise<PruneResult> {
    return this.locks.runAll(this.keys(spec), async () =>
      prunePortals(this.ctx, spec, await this.hostNqn(spec), stale, otherAttachments, opts),
    );
  }

  /** DM mode: `multipathd del path` for each path device, so no map keeps a path about to go. */
}
