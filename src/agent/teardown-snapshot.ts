/**
 * What the teardown decisions (teardown-plan.ts) read of the host: the devices on top of a volume
 * and who uses them, and per controller the attachment naming it and the namespaces behind it.
 * Reads only; the attacher runs the plan.
 */
import type { AttachSpec, PortalSpec, TargetSpec } from './connection-data.ts';
import type { AgentContext } from './context.ts';
import { anaCarriesIo } from './health.ts';
import type { HostPort } from './host/port.ts';
import { identify, isMatch, wantOf } from './identity.ts';
import { type DmMap, locateDmMap } from './multipath/dm.ts';
import { locateNative } from './multipath/native.ts';
import { servesPortal } from './portals.ts';
import {
  type BlockNamespace,
  type Controller,
  namespacesUnderController,
  readBlockNamespace,
  usedThrough,
} from './sysfs.ts';
import { type ControllerFact, type NamespaceFact, type TopDevice, needsUsage } from './teardown-plan.ts';
import { deviceUsage, describeUsage, isInUse } from './teardown.ts';

/** The devices on top of the volume and who uses each: its DM map, or its head / plain devices. */
export async function topDevices(
  ctx: AgentContext,
  spec: AttachSpec,
  hostNqn: string | null,
): Promise<{ top: TopDevice[]; map: DmMap | null }> {
  let map: DmMap | null = null;
  let tops: { block: string; path: string }[];
  if (spec.mode === 'dm') {
    const loc = await locateDmMap(ctx, spec);
    map = loc.map;
    tops = map
      ? [{ block: map.dm, path: `/dev/mapper/${map.name}` }]
      : loc.devices.map((d) => ({ block: d.name, path: `/dev/${d.name}` }));
  } else {
    // Every match: with nvme_core.multipath=N each controller has its own plain device.
    const { devices } = await locateNative(ctx, spec, hostNqn);
    tops = devices.map((d) => ({ block: d.name, path: `/dev/${d.name}` }));
  }
  const top: TopDevice[] = [];
  for (const d of tops) top.push({ ...d, usage: await deviceUsage(ctx.host, d.block, [d.path]) });
  return { top, map };
}

/**
 * What the keep decision needs of a controller: the other attachment naming it, and each
 * namespace behind it. Usage (a walk of /proc) and other paths are read only where they decide.
 */
export async function factOf(
  host: HostPort,
  c: Controller,
  t: TargetSpec,
  others: OtherUsers,
  hostNqn: string | null,
  complete: boolean,
  staleAmong?: Controller[],
): Promise<ControllerFact> {
  const namedBy = others.find((o) => o.nqn === c.nqn && servesPortal(c, o.portal, hostNqn)) ?? null;
  const namespaces: NamespaceFact[] = [];
  if (!namedBy) {
    const want = wantOf(t);
    for (const name of await namespacesUnderController(host, c.name)) {
      const ns = await readBlockNamespace(host, name);
      if (!ns) continue;
      const own = isMatch(identify(ns, want));
      const usableHere = usableThrough(c, ns);
      const usableElsewhere =
        !own && complete && staleAmong && !usableHere ? await usableElsewhereOf(host, ns, c, staleAmong) : null;
      const top = usedThrough(name);
      const usage =
        needsUsage({ own }, complete) && !usableElsewhere ? await deviceUsage(host, top, [`/dev/${top}`]) : null;
      namespaces.push({ name, top, own, usableHere, usableElsewhere, usage });
    }
  }
  return { controller: c, namedBy, namespaces };
}

/** An in-use namespace behind `c`, other than the target's, that no controller of `others` serves usably. */
export async function neededBeyond(
  host: HostPort,
  c: Controller,
  t: TargetSpec,
  others: Controller[],
): Promise<string | null> {
  const want = wantOf(t);
  for (const name of await namespacesUnderController(host, c.name)) {
    const ns = await readBlockNamespace(host, name);
    if (!ns || isMatch(identify(ns, want)) || (await usableElsewhereOf(host, ns, c, others))) continue;
    const top = usedThrough(name);
    const usage = await deviceUsage(host, top, [`/dev/${top}`]);
    if (isInUse(usage)) return `other namespace in use only through it: ${describeUsage(`/dev/${top}`, usage)}`;
  }
  return null;
}

/** Whether the namespace `ns` (behind `c`) is usable through another controller of its subsystem. */
export async function usableElsewhereOf(
  host: HostPort,
  ns: BlockNamespace,
  c: Controller,
  ctrls: Controller[],
): Promise<boolean> {
  for (const o of ctrls) {
    if (o.name === c.name || o.nqn !== c.nqn || o.state !== 'live') continue;
    for (const name of await namespacesUnderController(host, o.name)) {
      const other = await readBlockNamespace(host, name);
      // NSIDs are unique within a subsystem (NVMe Base Specification §3.2.1).
      if (other && other.nsid === ns.nsid && usableThrough(o, other)) return true;
    }
  }
  return false;
}

/** A path is usable when its controller is live and its ANA state carries I/O (unknown: DM mode, no ANA). */
export function usableThrough(c: Controller, ns: BlockNamespace): boolean {
  return c.state === 'live' && anaCarriesIo(ns.anaState);
}

/** A controller a teardown looks at: one of the target's portals, or of `onlyAt` when given. */
export function candidate(c: Controller, t: TargetSpec, hostNqn: string | null, onlyAt?: PortalSpec[]): boolean {
  return (onlyAt ?? t.portals).some((p) => servesPortal(c, p, hostNqn));
}

export type OtherUsers = { nqn: string; portal: PortalSpec; volUuid: string }[];

export function otherUsers(specs: AttachSpec[]): OtherUsers {
  return specs.flatMap((spec) =>
    spec.targets.flatMap((t) => t.portals.map((portal) => ({ nqn: t.nqn, portal, volUuid: spec.volUuid }))),
  );
}
