/**
 * DM multipath over NVMe (connection data with `dm_replicas`): one plain namespace per
 * replica/portal (nvme_core.multipath=N), found by WWID, assembled by multipathd into
 * `/dev/mapper/<map>`. Facts: docs/KERNEL.md §3.
 */
import { poll } from '../../shared/poll.ts';
import type { AttachSpec } from '../connection-data.ts';
import { AgentError } from '../errors.ts';
import { type ObservedPath, healthOf } from '../health.ts';
import { type AgentContext, traced } from '../context.ts';
import { type PortalState, connectFailed, connectPortals, portalStates, rescan } from '../portals.ts';
import { identify } from '../identity.ts';
import { type BlockNamespace, dmHolders, listNamespaces, readNativeMultipath } from '../sysfs.ts';
import { describePaths, type Located } from './paths.ts';

export interface DmMap {
  dm: string;
  name: string;
}

/** The map WWID multipathd uses: the kernel `wwid` (`ID_WWN`), `uuid.<UUID>` for our namespaces. */
export function mapWwid(spec: AttachSpec): string {
  return `uuid.${spec.volUuid}`;
}

/** Plain namespace devices of the volume in any of its replicas' subsystems. */
function pathDevices(all: BlockNamespace[], spec: AttachSpec): BlockNamespace[] {
  return all.filter((n) => {
    if (n.kind !== 'plain') return false;
    const t = spec.targets.find((x) => x.nqn === n.subsysnqn);
    return t !== undefined && identify(n, { uuid: t.uuid }) === 'uuid';
  });
}

/** The dm map over the path devices: a `holders/dm-*` whose `dm/uuid` is `mpath-<wwid>`. */
export async function findMap(ctx: AgentContext, spec: AttachSpec, devices: BlockNamespace[]): Promise<DmMap | null> {
  const wwid = mapWwid(spec);
  for (const d of devices) {
    for (const h of await dmHolders(ctx.host, d.name))
      if (h.name && (h.uuid === `mpath-${wwid}` || h.uuid === null)) return { dm: h.dm, name: h.name };
  }
  // No path left (all controllers gone) but the map may still be there: scan the dm devices.
  for (const dm of (await ctx.host.readdir('/sys/block')).filter((n) => n.startsWith('dm-'))) {
    if ((await ctx.host.readFile(`/sys/block/${dm}/dm/uuid`))?.trim() === `mpath-${wwid}`) {
      const name = (await ctx.host.readFile(`/sys/block/${dm}/dm/name`))?.trim();
      if (name) return { dm, name };
    }
  }
  return null;
}

/** multipathd's path states by device name; `show maps json`, else the raw `show paths` format. */
async function multipathdPathStates(ctx: AgentContext, wwid: string): Promise<Map<string, string>> {
  const states = new Map<string, string>();
  const r = await ctx.host.run('multipathd', ['show', 'maps', 'json'], { timeoutMs: ctx.commandTimeoutMs });
  if (r.code === 0) {
    try {
      const j = JSON.parse(r.stdout) as {
        maps?: { uuid?: string; path_groups?: { paths?: { dev?: string; dm_st?: string; chk_st?: string }[] }[] }[];
      };
      for (const m of j.maps ?? []) {
        if (m.uuid !== wwid) continue;
        for (const g of m.path_groups ?? [])
          for (const p of g.paths ?? [])
            if (p.dev) states.set(p.dev, p.dm_st === 'active' && p.chk_st !== 'faulty' ? 'active' : 'failed');
      }
      return states;
    } catch {
      // fall through to the text format (older multipath-tools without json, or garbled output)
    }
  }
  const t = await ctx.host.run('multipathd', ['show', 'paths', 'raw', 'format', '%d %w %t %T %o %m'], {
    timeoutMs: ctx.commandTimeoutMs,
  });
  for (const line of t.code === 0 ? t.stdout.split('\n') : []) {
    const [dev, w, dmSt, chkSt] = line.trim().split(/\s+/);
    if (dev && w === wwid) states.set(dev, dmSt === 'active' && chkSt !== 'faulty' ? 'active' : 'failed');
  }
  return states;
}

async function dmPaths(
  ctx: AgentContext,
  spec: AttachSpec,
  all: BlockNamespace[],
  statesByTarget: PortalState[][],
  map: DmMap | null,
): Promise<ObservedPath[]> {
  const dmStates = map ? await multipathdPathStates(ctx, mapWwid(spec)) : new Map<string, string>();
  const devices = pathDevices(all, spec);
  return spec.targets.flatMap((t, i) =>
    describePaths(all, t, statesByTarget[i]!, false).map((p) => {
      const dev = devices.find((d) => d.controller === p.controller);
      // A path the map does not (yet) contain does not carry I/O for the map.
      return { ...p, dmState: map ? (dev ? (dmStates.get(dev.name) ?? 'failed') : null) : 'failed' };
    }),
  );
}

/**
 * The map and the path devices of the volume, from sysfs alone: what a detach needs. Without the
 * portal states and multipathd's view of each path (`locateDm`), which only a report needs, and
 * whose `multipathd show maps json` is a process start before the first teardown step.
 */
export async function locateDmMap(
  ctx: AgentContext,
  spec: AttachSpec,
): Promise<{ map: DmMap | null; devices: BlockNamespace[] }> {
  const devices = pathDevices(await listNamespaces(ctx.host), spec);
  return { map: await findMap(ctx, spec, devices), devices };
}

export async function locateDm(
  ctx: AgentContext,
  spec: AttachSpec,
  hostNqn: string | null,
): Promise<Located & { map: DmMap | null; devices: BlockNamespace[] }> {
  const [all, statesByTarget] = await Promise.all([
    listNamespaces(ctx.host),
    Promise.all(spec.targets.map((t) => portalStates(ctx, t, hostNqn))),
  ]);
  const devices = pathDevices(all, spec);
  const map = await findMap(ctx, spec, devices);
  const paths = await dmPaths(ctx, spec, all, statesByTarget, map);
  const size = map ? Number((await ctx.host.readFile(`/sys/block/${map.dm}/size`))?.trim() ?? NaN) * 512 : NaN;
  return {
    map,
    devices,
    devicePath: map ? `/dev/mapper/${map.name}` : null,
    sizeBytes: Number.isFinite(size) ? size : null,
    paths,
    health: healthOf(paths),
  };
}

/** DM needs nvme_core.multipath=N: multipath-tools ≥0.9.6 blacklists NVMe when it is Y. */
export async function assertDmUsable(ctx: AgentContext): Promise<void> {
  if ((await readNativeMultipath(ctx.host)) === true) {
    throw new AgentError(
      'dm_unavailable',
      'DM multipath needs nvme_core.multipath=N (boot parameter): with native multipath on, multipath-tools ignores NVMe devices',
    );
  }
}

export async function attachDm(ctx: AgentContext, spec: AttachSpec, hostNqn: string | null): Promise<Located> {
  await assertDmUsable(ctx);
  const outcomes = await Promise.all(spec.targets.map((t) => connectPortals(ctx, t, hostNqn, 'all', spec.hostNqn)));
  if (!outcomes.some((o) => o.states.some((s) => s.controller)))
    throw connectFailed(
      spec.targets[0]!,
      outcomes.flatMap((o) => o.failures),
    );

  // Steps to make multipathd build (or extend) the map, escalating: tell it about each path
  // (no udev event may have reached it), then reconfigure (strict find_multipaths, reread).
  // Only the path devices behind this spec's portals: a controller kept for another volume after
  // this one's replica moved away still shows this volume's namespace (nvmet's subsystem-wide
  // namespace list, its ANA group inaccessible there), and adding it back would undo the prune.
  const ours = new Set(outcomes.flatMap((o) => o.states.flatMap((x) => (x.controller ? [x.controller.name] : []))));
  let step = 0;
  const pending = new Set<string>();
  const found = await traced(ctx, 'device and map wait', () =>
    poll<DmMap>(
      async () => {
        const all = await listNamespaces(ctx.host);
        const devices = pathDevices(all, spec).filter((d) => d.controller !== null && ours.has(d.controller));
        if (devices.length === 0) {
          if (step === 0) {
            step = 1;
            await rescan(
              ctx,
              outcomes.flatMap((o) => [...o.preexisting]),
            );
          }
          return { done: false, last: null };
        }
        const map = await findMap(ctx, spec, devices);
        const outside = [];
        for (const d of devices)
          if (!(await dmHolders(ctx.host, d.name)).some((h) => h.dm === map?.dm)) outside.push(d);
        if (map && outside.length === 0) return { done: true, value: map };
        const fresh = outside.filter((d) => !pending.has(d.name));
        if (fresh.length) {
          // All at once: multipathd's listener still runs the commands one after another
          // (multipathd `uxlsnr.c`, under its vecs lock), but the `multipathd` client processes'
          // start-up, most of each call's time on a small host, overlaps instead of adding up.
          for (const d of fresh) pending.add(d.name);
          const results = await Promise.all(
            fresh.map(async (d) => ({
              d,
              r: await traced(ctx, `multipathd add path ${d.name}`, () =>
                ctx.host.run('multipathd', ['add', 'path', d.name], { timeoutMs: ctx.commandTimeoutMs }),
              ),
            })),
          );
          for (const { d, r } of results) {
            if (r.code === 127) throw new AgentError('dm_unavailable', 'multipathd is not installed');
            if (r.code !== 0) ctx.log.warn({ path: d.name, err: r.stderr.trim() }, 'multipathd add path failed');
          }
        } else if (!map && step < 2) {
          step = 2;
          await traced(ctx, 'multipathd reconfigure', () =>
            ctx.host.run('multipathd', ['reconfigure'], { timeoutMs: ctx.commandTimeoutMs }),
          );
        } else if (map) {
          return { done: true, value: map }; // a path multipathd will not take is reported, not fatal
        }
        return { done: false, last: null };
      },
      // Each check reads every namespace and the holders: a slower pace than the native wait's.
      { deadlineMs: ctx.deviceTimeoutMs, intervalMs: 20, backoff: 1.2, maxIntervalMs: 250, clock: ctx.host.clock },
    ),
  );
  if (!found.done) {
    const now = await locateDm(ctx, spec, hostNqn);
    if (now.devices.length === 0)
      throw new AgentError(
        'device_not_found',
        `no NVMe device with WWID ${mapWwid(spec)} appeared after ${ctx.deviceTimeoutMs} ms`,
        { details: { paths: now.paths } },
      );
    throw new AgentError(
      'dm_map_missing',
      `multipathd did not assemble a map for ${mapWwid(spec)} over ${now.devices.map((d) => d.name).join(', ')} ` +
        '(find_multipaths strict and the WWID not in the wwids file?)',
      { details: { paths: now.paths } },
    );
  }
  return traced(ctx, 'sysfs and multipathd: describe', () => locateDm(ctx, spec, hostNqn));
}

/**
 * Removes the map before its paths go (paths removed first leave a map queueing I/O on
 * nothing: multipath.8, docs/KERNEL.md §3). `multipath -f` refuses a map in use; `dmsetup remove` is the
 * fallback, with `--force` only when the caller forced the detach.
 */
export async function removeMap(ctx: AgentContext, map: DmMap, force: boolean): Promise<void> {
  const present = async () => (await ctx.host.readFile(`/sys/block/${map.dm}/dm/name`))?.trim() === map.name;
  const tries: [string, string[]][] = [
    ['multipath', ['-f', map.name]],
    ['dmsetup', force ? ['remove', '--force', map.name] : ['remove', map.name]],
  ];
  const said: string[] = [];
  for (const [cmd, args] of tries) {
    const r = await ctx.host.run(cmd, args, { timeoutMs: ctx.commandTimeoutMs });
    if (r.code !== 0) said.push(`${cmd} ${args.join(' ')}: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`);
    if (!(await present())) return;
  }
  throw new AgentError('teardown_failed', `DM map ${map.name} (${map.dm}) is still present: ${said.join('; ')}`);
}
