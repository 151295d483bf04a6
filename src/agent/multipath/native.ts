/**
 * Native NVMe multipath (and single path): connect the portals, find the volume's top-level
 * block device (the head `nvmeSnI`, never a per-path `nvmeScCnI`; a plain `nvmeCnI` when
 * nvme_core.multipath=N) and describe its paths.
 */
import { poll } from '../../shared/poll.ts';
import type { AttachSpec, TargetSpec } from '../connection-data.ts';
import { AgentError } from '../errors.ts';
import { healthOf } from '../health.ts';
import { type AgentContext, traced } from '../context.ts';
import { type PortalState, connectFailed, connectPortals, portalStates, rescan } from '../portals.ts';
import { type Identity, MATCH_TIERS, identify, isOtherVolume, wantOf } from '../identity.ts';
import { type Located, describePaths, onController } from './paths.ts';
import { type BlockNamespace, findSubsystem, listNamespaces } from '../sysfs.ts';

export interface TopLookup {
  /** Matches at the best identifier tier; several only for plain namespaces (multipath=N). */
  devices: BlockNamespace[];
  by: Identity | null;
  /** Namespaces of the subsystem at the volume's NSID that belong to another volume. */
  conflicts: BlockNamespace[];
}

/** The volume's top-level device(s) among `all`, by subsystem NQN then uuid → nguid → nsid. */
export function findTop(all: BlockNamespace[], target: TargetSpec): TopLookup {
  const mine = all.filter((n) => n.kind !== 'path' && n.subsysnqn === target.nqn);
  const want = wantOf(target);
  const ids = mine.map((n) => ({ n, id: identify(n, want) }));
  const conflicts = mine.filter((n) => isOtherVolume(n, want));
  for (const tier of MATCH_TIERS) {
    const devices = ids.filter((x) => x.id === tier).map((x) => x.n);
    if (devices.length) return { devices, by: tier, conflicts };
  }
  return { devices: [], by: null, conflicts };
}

function pickDevice(lookup: TopLookup, states: PortalState[]): BlockNamespace | null {
  if (lookup.devices.length <= 1) return lookup.devices[0] ?? null;
  // Several plain namespaces (multipath=N): take the one on the first portal's live controller.
  for (const s of states) {
    const d = lookup.devices.find((n) => n.controller === s.controller?.name && s.controller?.state === 'live');
    if (d) return d;
  }
  return lookup.devices[0]!;
}

/** Reads where the volume is now, without connecting anything. */
export async function locateNative(
  ctx: AgentContext,
  spec: AttachSpec,
  hostNqn: string | null,
): Promise<Located & { device: BlockNamespace | null; devices: BlockNamespace[] }> {
  const target = spec.targets[0]!;
  const [states, all] = await Promise.all([portalStates(ctx, target, hostNqn), listNamespaces(ctx.host)]);
  const lookup = findTop(all, target);
  const device = pickDevice(lookup, states);
  const paths = describePaths(all, target, states, spec.mode === 'single');
  return {
    device,
    devices: lookup.devices,
    devicePath: device ? `/dev/${device.name}` : null,
    sizeBytes: device?.sizeBytes ?? null,
    paths,
    health: healthOf(paths),
  };
}

/**
 * The device wait's pace: a readdir of /sys/block every 10 ms at first (the head appears a few
 * ms to a few hundred ms after the connects return, when the kernel's namespace scan work ran),
 * growing to 100 ms after about a second. sysfs does not send inotify events for new entries
 * (sysfs is not a notifying file system: Documentation/filesystems/sysfs.rst has no notify for
 * directories), so this polls; a readdir is cheap, and the namespaces are only read again when
 * the set of NVMe block devices changed.
 */
export const DEVICE_WAIT = { intervalMs: 10, backoff: 1.1, maxIntervalMs: 100 };
/** After the head appeared, how long to wait for every live controller's path to show. */
const PATHS_GRACE_MS = 500;

export async function attachNative(ctx: AgentContext, spec: AttachSpec, hostNqn: string | null): Promise<Located> {
  const target = spec.targets[0]!;
  const single = spec.mode === 'single';
  const outcome = await connectPortals(ctx, target, hostNqn, single ? 'first' : 'all', spec.hostNqn);
  if (!outcome.states.some((s) => s.controller)) throw connectFailed(target, outcome.failures);

  let rescanned = false;
  let lookup: TopLookup = { devices: [], by: null, conflicts: [] };
  let seen = '';
  let all: BlockNamespace[] = [];
  let states = outcome.states;
  let headAt: number | null = null;
  let scans = 0;
  const waitStarted = ctx.host.clock.now();
  const found = await traced(
    ctx,
    'device wait',
    () =>
      poll<BlockNamespace>(
        async () => {
          // Only read the namespaces again when the NVMe block devices changed.
          const names = (await ctx.host.readdir('/sys/block')).filter((n) => n.startsWith('nvme')).join(' ');
          if (names !== seen || scans === 0) {
            seen = names;
            scans++;
            [all, states] = await Promise.all([listNamespaces(ctx.host), portalStates(ctx, target, hostNqn)]);
            lookup = findTop(all, target);
          }
          const d = pickDevice(lookup, states);
          if (d) {
            headAt ??= ctx.host.clock.now();
            // Report every path at once: each controller's scan work adds its own path device,
            // usually within ms of the head; do not wait long for a straggler (a later pass sees it).
            const pathsShown =
              single ||
              states.every((s) => s.controller?.state !== 'live' || onController(all, target, s.controller.name).ns);
            if (pathsShown || ctx.host.clock.now() - headAt >= PATHS_GRACE_MS) return { done: true, value: d };
            return { done: false, last: null };
          }
          // A live controller that was already there does not see a namespace added since it
          // connected unless the target sent an AEN; ask it to rescan (os-brick `_connect_target`
          // rescans live controllers; docs/KERNEL.md §1).
          if (!rescanned) {
            rescanned = true;
            const live = states.filter(
              (s) => s.controller?.state === 'live' && !onController(all, target, s.controller.name).ns,
            );
            await rescan(
              ctx,
              live.map((s) => s.controller!.name).filter((c) => outcome.preexisting.has(c)),
            );
          }
          return { done: false, last: null };
        },
        { deadlineMs: ctx.deviceTimeoutMs, ...DEVICE_WAIT, clock: ctx.host.clock },
      ),
    () =>
      `${scans} namespace scan(s)${headAt === null ? ', no head' : `, head at ${Math.round(headAt - waitStarted)} ms`}`,
  );
  if (!found.done) {
    const now = await locateNative(ctx, spec, hostNqn);
    if (lookup.conflicts.length) {
      throw new AgentError(
        'wrong_volume',
        `subsystem ${target.nqn} shows ${lookup.conflicts.map((c) => `${c.name} (uuid ${c.uuid})`).join(', ')} ` +
          `where volume ${target.uuid} was expected`,
        {
          details: { paths: now.paths },
        },
      );
    }
    throw new AgentError(
      'device_not_found',
      `no block device for volume ${target.uuid} in ${target.nqn} after ${ctx.deviceTimeoutMs} ms ` +
        `(paths: ${now.paths.map((p) => `${p.controller ?? '-'}:${p.state}/${p.anaState ?? '-'}`).join(', ')}; ` +
        'the kernel creates the head only once a path is live and ANA optimized or non-optimized)',
      { details: { paths: now.paths, failures: outcome.failures } },
    );
  }
  if (lookup.by === 'nsid')
    ctx.log.warn(
      { device: found.value.name, nsid: target.nsid },
      'volume matched by NSID only: the namespace exposes neither UUID nor NGUID',
    );
  if (ctx.iopolicy && !single) {
    await applyIopolicy(ctx, target.nqn, ctx.iopolicy);
    return locateNative(ctx, spec, hostNqn);
  }
  // The scan that found the device is the state to report: no second scan of sysfs.
  const device = found.value;
  const paths = describePaths(all, target, states, single);
  return { devicePath: `/dev/${device.name}`, sizeBytes: device.sizeBytes, paths, health: healthOf(paths) };
}

/** Sets the subsystem's iopolicy when configured and different; a failure is logged only. */
async function applyIopolicy(ctx: AgentContext, nqn: string, policy: string): Promise<void> {
  const s = await findSubsystem(ctx.host, nqn);
  if (!s || s.iopolicy === null || s.iopolicy === policy) return;
  try {
    await ctx.host.writeFile(`/sys/class/nvme-subsystem/${s.name}/iopolicy`, policy);
  } catch (e) {
    ctx.log.warn({ subsystem: s.name, policy, err: (e as Error).message }, 'could not set iopolicy');
  }
}
