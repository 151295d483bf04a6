import { DriverError } from './errors.ts';
import type {
  AnaState,
  ConnectedBy,
  ConnectionInfo,
  Connector,
  MultipathMode,
  PortalTuple,
  VolumePath,
} from './model.ts';

/**
 * The multipath mode a connector asks for:
 * - `multipath` and `nvme_native_multipath` → native: every portal, the kernel multipaths (ANA);
 * - `multipath`, native off and `dm_multipath: true` → DeviceMapper (`dm_replicas`). Only the
 *   Portalis agent sends `dm_multipath`: os-brick's NVMeOFConnector never implemented the DM
 *   phase of Cinder's NVMe-oF multipath spec, and given `dm_replicas` without `target_nqn` its
 *   NVMeOFConnProps takes the legacy branch and fails with `KeyError: 'nqn'` before connecting
 *   anything (os-brick os_brick/initiator/connectors/nvmeof.py);
 * - anything else → single: the `portals` format with every portal, which os-brick without
 *   native multipath walks in order, stopping at the first that connects.
 * `enforce_multipath` on a host that ends up single-path is refused before anything is granted
 * (os-brick's own check_multipath refuses the same connector).
 */
export function chooseMultipathMode(connector: Connector): MultipathMode {
  let mode: MultipathMode = 'single';
  if (connector.multipath === true) {
    if (connector.nvme_native_multipath === true) mode = 'native';
    else if (connector.dm_multipath === true) mode = 'dm';
  }
  if (mode === 'single' && connector.enforce_multipath === true) {
    const why =
      connector.multipath !== true
        ? 'the connector says multipath=false'
        : 'native NVMe multipath is off (nvme_native_multipath is not true) and the connector does not offer ' +
          'DeviceMapper multipath (dm_multipath is not true)';
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

/**
 * Who connects the attachment a connector asks for (docs/DECISIONS.md, "Who connects an
 * attachment"). Only `portalis agent connector-properties` writes `dm_multipath` (true or false,
 * always): a connector with it was made by or for the Portalis agent, which then connects the
 * device itself. os-brick's `get_connector_properties` never writes it: that connector is Nova's
 * (through Cinder's driver, or any orchestrator that lets os-brick connect), and os-brick
 * connects the device; the agent, if the host runs one, only assists. Decided at the first
 * initialize_connection of an attachment and kept across its repeats.
 */
export function chooseConnectedBy(connector: Connector): ConnectedBy {
  return Object.hasOwn(connector, 'dm_multipath') ? 'agent' : 'host';
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
 * Builds the os-brick NVMeOFConnProps "new format" (`target_nqn` + `portals`) for native and
 * single mode, or, for a Portalis agent with DeviceMapper, the `dm_replicas` form of the Cinder
 * NVMe-oF multipath spec (Phase 2), which os-brick cannot read. Both native and single list
 * every replica's portal, the optimized first: single-path os-brick connects the first portal
 * that answers, so a node down at attach time costs one failed connect, not the attach.
 * `ns_id` is a string because os-brick compares it with the text of sysfs `nsid`.
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
  return {
    driver_volume_type: 'nvmeof',
    data: { ...common, target_nqn: input.subsystemNqn, portals: ordered.map(tuple) },
  };
}
