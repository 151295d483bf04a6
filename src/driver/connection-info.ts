import { DriverError } from './errors.ts';
import type { AnaState, ConnectionInfo, Connector, MultipathMode, PortalTuple, VolumePath } from './model.ts';

/**
 * The multipath mode a connector asks for (docs/DECISIONS.md "Connection info is os-brick's NVMeOFConnProps"):
 * `multipath` and `nvme_native_multipath` → native; `multipath` alone → DeviceMapper;
 * otherwise a single path. A connector that reports `dm_multipath: false` (the Portalis agent
 * does; os-brick's connector has no such key) cannot do DM, so it falls back to single.
 * `enforce_multipath` on a host that ends up single-path is refused before anything is granted.
 */
export function chooseMultipathMode(connector: Connector): MultipathMode {
  let mode: MultipathMode = 'single';
  if (connector.multipath === true) {
    if (connector.nvme_native_multipath === true) mode = 'native';
    else if (connector.dm_multipath !== false) mode = 'dm';
  }
  if (mode === 'single' && connector.enforce_multipath === true) {
    const why =
      connector.multipath !== true
        ? 'the connector says multipath=false'
        : 'native NVMe multipath is off (nvme_native_multipath=false) and DeviceMapper multipath is unavailable (dm_multipath=false)';
    throw new DriverError(
      'multipath_required',
      `connector.enforce_multipath is set but host ${connector.host} cannot multipath: ${why}`,
      {
        details: { field: 'connector.enforce_multipath', host: connector.host },
      },
    );
  }
  return mode;
}

const ANA_RANK: Record<AnaState, number> = {
  optimized: 0,
  'non-optimized': 1,
  unknown: 2,
  change: 3,
  inaccessible: 4,
  'persistent-loss': 5,
};

const usableNow = (p: VolumePath) => p.anaState !== 'inaccessible' && p.anaState !== 'persistent-loss';

/**
 * Every path, ANA-optimized first and the ones unusable right now last (a replica whose node
 * is down is still handed out, so that the host connects it once it is back); stable for equal
 * states.
 */
export function orderPaths(paths: readonly VolumePath[]): VolumePath[] {
  return paths
    .map((p, i) => ({ p, i }))
    .sort((a, b) => ANA_RANK[a.p.anaState] - ANA_RANK[b.p.anaState] || a.i - b.i)
    .map(({ p }) => p);
}

const tuple = (p: VolumePath): PortalTuple => [p.portal.address, p.portal.port, p.portal.transport];

export interface ConnectionInfoInput {
  volumeUuid: string;
  subsystemNqn: string;
  nsid?: number;
  nguid?: string;
  paths: readonly VolumePath[];
  hostNqn: string;
  mode: MultipathMode;
  accessMode: 'rw' | 'ro';
}

/**
 * Builds the os-brick NVMeOFConnProps ("new format") for the mode, or the `dm_replicas` form
 * of the Cinder NVMe-oF multipath spec (Phase 2). `ns_id` is a string because os-brick
 * compares it with the text of sysfs `nsid`.
 */
export function buildConnectionInfo(input: ConnectionInfoInput): ConnectionInfo {
  const ordered = orderPaths(input.paths);
  if (!ordered.some(usableNow)) {
    throw new DriverError(
      'no_path',
      `no storage node can serve volume ${input.volumeUuid} right now (every replica's node is down)`,
      {
        details: { vol_uuid: input.volumeUuid },
      },
    );
  }
  const common = {
    vol_uuid: input.volumeUuid,
    ...(input.nsid !== undefined ? { ns_id: String(input.nsid) } : {}),
    ...(input.nguid ? { volume_nguid: input.nguid } : {}),
    host_nqn: input.hostNqn,
    multipath_mode: input.mode,
    access_mode: input.accessMode,
    discard: true,
  };
  if (input.mode === 'dm') {
    return {
      driver_volume_type: 'nvmeof',
      data: {
        ...common,
        dm_replicas: ordered.map((p) => ({
          vol_uuid: input.volumeUuid,
          target_nqn: input.subsystemNqn,
          portals: [tuple(p)],
        })),
      },
    };
  }
  // Single path: the best one that works now (ordered puts it first).
  const portals = input.mode === 'native' ? ordered.map(tuple) : [tuple(ordered[0]!)];
  return { driver_volume_type: 'nvmeof', data: { ...common, target_nqn: input.subsystemNqn, portals } };
}
