/**
 * What the native and the DM strategies share: the located device and the per-portal paths,
 * with the namespace behind each controller checked to be the volume.
 */
import type { TargetSpec } from '../connection-data.ts';
import type { Health, ObservedPath } from '../health.ts';
import { identify, isMatch, isOtherVolume, wantOf } from '../identity.ts';
import type { PortalState } from '../portals.ts';
import type { BlockNamespace } from '../sysfs.ts';

export interface Located {
  devicePath: string | null;
  sizeBytes: number | null;
  paths: ObservedPath[];
  health: Health;
}

/** Our namespace on one controller: the per-path device of our head, or our plain device. */
export function onController(
  all: BlockNamespace[],
  target: TargetSpec,
  ctrl: string,
): { ns: BlockNamespace | null; conflict: boolean } {
  const here = all.filter((n) => n.controller === ctrl && n.subsysnqn === target.nqn);
  const want = wantOf(target);
  const ns = here.find((n) => isMatch(identify(n, want))) ?? null;
  const conflict = !ns && here.some((n) => isOtherVolume(n, want));
  return { ns, conflict };
}

/**
 * One ObservedPath per portal that should carry I/O: in native mode every portal, in single mode
 * the portals that have a controller. The namespace behind each controller is checked to be
 * this volume (UUID) before the path counts: after a node reboot the same NSID can be another
 * volume.
 */
export function describePaths(
  all: BlockNamespace[],
  target: TargetSpec,
  states: PortalState[],
  single: boolean,
): ObservedPath[] {
  const out: ObservedPath[] = [];
  for (const { portal, controller } of states) {
    if (single && !controller) continue;
    const base = { address: portal.address, port: portal.port, transport: portal.transport };
    if (!controller) {
      out.push({ ...base, controller: null, state: 'missing', anaState: null });
      continue;
    }
    const { ns, conflict } = onController(all, target, controller.name);
    const state = controller.state ?? 'missing';
    out.push({
      ...base,
      controller: controller.name,
      state: ns ? state : conflict ? 'wrong-volume' : state === 'live' ? 'no-namespace' : state,
      anaState: ns?.anaState ?? null,
    });
  }
  return out;
}
