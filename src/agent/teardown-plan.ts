/**
 * The teardown's policy as pure functions over a snapshot of the host: which device is refused,
 * flushed or removed, which controller goes and why another stays. The attacher reads the
 * snapshot (sysfs, /proc) and runs the plan's steps, recording each (`DisconnectResult`); the
 * decisions are here, testable without running anything.
 */
import { type PortalSpec, portalLabel } from './connection-data.ts';
import type { DmMap } from './multipath/dm.ts';
import type { Controller } from './sysfs.ts';
import { type DeviceUsage, describeUsage, isInUse } from './teardown.ts';

/** A device on top of the volume (its DM map, or its head / plain devices) and who uses it. */
export interface TopDevice {
  block: string;
  path: string;
  usage: DeviceUsage;
}

export type TeardownStep =
  | { kind: 'flush'; path: string }
  | { kind: 'remove-map'; map: DmMap }
  | { kind: 'disconnect'; controller: Controller };

export interface DevicePlan {
  /** The first device in use, when the teardown is not forced: nothing is done at all. */
  refused: TopDevice | null;
  /** Devices in use that a forced teardown goes on past. */
  forcedPast: TopDevice[];
  steps: TeardownStep[];
}

/**
 * The device on top: refused while in use unless forced; then each flushed (dirty buffers out
 * before the paths go, os-brick bug #1903032) and, in DM mode, the map removed before any path
 * (paths removed first leave a map queueing I/O on nothing: multipath.8).
 */
export function planDevice(top: TopDevice[], map: DmMap | null, force: boolean): DevicePlan {
  const busy = top.filter((d) => isInUse(d.usage));
  if (busy.length && !force) return { refused: busy[0]!, forcedPast: [], steps: [] };
  const steps: TeardownStep[] = top.map((d) => ({ kind: 'flush', path: d.path }));
  if (map) steps.push({ kind: 'remove-map', map });
  return { refused: null, forcedPast: busy, steps };
}

/** A namespace visible behind a controller, as the keep decision needs it. */
export interface NamespaceFact {
  name: string;
  /** The device its users open (the head for a per-path device). */
  top: string;
  /** The volume being torn down (never a reason to keep). */
  own: boolean;
  /** Live controller and an ANA state that carries I/O. */
  usableHere: boolean;
  /** Usable through another live controller of the subsystem; read only where it decides. */
  usableElsewhere: boolean | null;
  /** Who uses `top`; read only where it decides. */
  usage: DeviceUsage | null;
}

export interface ControllerFact {
  controller: Controller;
  /** Another attachment of this host whose portals name this controller. */
  namedBy: { nqn: string; portal: PortalSpec; volUuid: string } | null;
  namespaces: NamespaceFact[];
}

/**
 * Why a controller must stay, or null. Another attachment on this host uses the same subsystem
 * and portal (its namespace may not even be visible yet); or another namespace behind it is in
 * use: `nvme disconnect` would take that volume's path too.
 *
 * `complete`: the caller knows every attachment the service wants on this host (the daemon).
 * Then a visible namespace nobody wants and nobody uses does not keep the controller: on a
 * shared subsystem a detached volume's namespace can stay visible (an ACL change does not always
 * reach the host at once, and nvmet's ACL is per subsystem), and counting it would leak the
 * controllers for good (os-brick bug #1961102's leftover controllers). A caller without that
 * knowledge (the CLI) keeps the controller for any other visible namespace, as os-brick does.
 *
 * `stale` (the prune): no current portal of this volume names the controller, nor any other
 * attachment's. Then another volume's namespace that is unusable through it while usable through
 * another controller does not keep it: after a node is readdressed the controller to its old
 * address is dead and carries every volume served through that node; kept for the sake of a
 * volume whose head is open, it would stay forever, and the connect to the new address would keep
 * failing with EINVAL: nvmet hands the new association the dead one's controller ID, and the host
 * refuses a second controller with the same ID in one subsystem (drivers/nvme/host/core.c
 * `nvme_validate_cntlid`, "Duplicate cntlid").
 */
export function keepReasonOf(f: ControllerFact, complete: boolean, stale = false): string | null {
  if (f.namedBy)
    return (
      `another attachment on this host (volume ${f.namedBy.volUuid}) uses ${f.namedBy.nqn} ` +
      `via ${portalLabel(f.namedBy.portal)}`
    );
  const busy: string[] = [];
  for (const ns of f.namespaces) {
    if (ns.own) continue;
    if (!complete) {
      busy.push(`/dev/${ns.name} (visible; this caller does not know which attachments the host has)`);
      continue;
    }
    if (stale && !ns.usableHere && ns.usableElsewhere) continue;
    if (ns.usage && isInUse(ns.usage)) busy.push(describeUsage(`/dev/${ns.top}`, ns.usage));
  }
  return busy.length ? `other namespaces behind it: ${busy.join('; ')}` : null;
}

/** Which namespace facts a keep decision reads (so the snapshot reads nothing it does not need). */
export function needsUsage(ns: Pick<NamespaceFact, 'own'>, complete: boolean): boolean {
  return !ns.own && complete;
}

/**
 * The controllers: each goes unless it has a reason to stay. One at a time, in order: `nvme
 * disconnect` (nvme-cli 2.3 / libnvme 1.3) scans all of sysfs first and aborts when a controller
 * directory vanishes under that scan (libnvme #840), as it does while another one goes.
 */
export function planControllers(
  facts: ControllerFact[],
  complete: boolean,
): { steps: TeardownStep[]; kept: { controller: string; reason: string }[] } {
  const steps: TeardownStep[] = [];
  const kept: { controller: string; reason: string }[] = [];
  for (const f of facts) {
    const reason = keepReasonOf(f, complete);
    if (reason) kept.push({ controller: f.controller.name, reason });
    else steps.push({ kind: 'disconnect', controller: f.controller });
  }
  return { steps, kept };
}
