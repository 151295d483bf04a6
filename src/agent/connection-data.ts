/**
 * Turns connection info (os-brick NVMeOFConnProps "new format", or the DM form with
 * `dm_replicas`; docs/DECISIONS.md) into the agent's own typed view. This is the
 * boundary: everything past it works with `AttachSpec`, never with the raw dict.
 */
import type { ConnectionData, MultipathMode, PortalTuple } from '../driver/model.ts';
import { AgentError } from './errors.ts';

export interface PortalSpec {
  /** Without IPv6 brackets. */
  address: string;
  port: number;
  transport: 'tcp' | 'rdma';
}

/** One NVMe subsystem to connect and the namespace of the volume within it. */
export interface TargetSpec {
  nqn: string;
  /** Namespace UUID, lower case. */
  uuid: string;
  /** 32 lower-case hex digits. */
  nguid?: string;
  /** As text: compared with the sysfs `nsid` attribute. */
  nsid?: string;
  portals: PortalSpec[];
}

export interface AttachSpec {
  mode: MultipathMode;
  volUuid: string;
  hostNqn?: string;
  /** native/single: one target; dm: one per replica. */
  targets: TargetSpec[];
}

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

function bad(field: string, why: string): never {
  throw new AgentError('invalid_connection_info', `connection info: ${field} ${why}`, { details: { field } });
}

/** Canonical dashed lower-case UUID (os-brick normalises with `str(uuid.UUID(x))`). */
export function normUuid(v: string): string {
  const h = v.toLowerCase().replace(/-/g, '');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** 32 hex digits, for comparing NGUIDs printed with or without dashes. */
export function normHex(v: string): string {
  return v.toLowerCase().replace(/-/g, '');
}

export function stripBrackets(address: string): string {
  return address.replace(/^\[(.*)\]$/, '$1');
}

function parsePortal(p: unknown, field: string): PortalSpec {
  if (!Array.isArray(p) || p.length !== 3) bad(field, 'must be [address, port, transport]');
  const [address, port, transport] = p as PortalTuple;
  if (typeof address !== 'string' || !address) bad(`${field}[0]`, 'must be an address');
  const n = typeof port === 'string' ? Number(port) : port;
  if (!Number.isInteger(n) || n <= 0 || n > 65535) bad(`${field}[1]`, 'must be a port number');
  const t = String(transport).toLowerCase();
  // os-brick: 'RoCEv2' and 'rdma' mean RDMA; we reject what we cannot connect (fc, loop).
  const tr =
    t === 'rocev2' || t === 'rdma'
      ? 'rdma'
      : t === 'tcp'
        ? 'tcp'
        : bad(`${field}[2]`, `transport '${transport}' is not tcp or rdma`);
  return { address: stripBrackets(address), port: n, transport: tr };
}

/** Portals in os-brick's `[address, port, transport]` form (`host_portals` of the agent's list). */
export function parsePortals(tuples: readonly PortalTuple[], field: string): PortalSpec[] {
  return tuples.map((p, j) => parsePortal(p, `${field}[${j}]`));
}

function parseUuid(v: unknown, field: string): string {
  if (typeof v !== 'string' || !UUID.test(v)) bad(field, 'must be a UUID');
  return normUuid(v);
}

/** Accepts the whole `connection_info` ({driver_volume_type, data}) or just its `data`. */
export function parseConnectionData(input: unknown): ConnectionData {
  if (typeof input !== 'object' || input === null) bad('data', 'must be an object');
  const o = input as Record<string, unknown>;
  const d = (typeof o.data === 'object' && o.data !== null && 'driver_volume_type' in o ? o.data : o) as Record<
    string,
    unknown
  >;
  if (d.dm_replicas !== undefined && d.volume_replicas !== undefined)
    bad('dm_replicas', 'cannot be combined with volume_replicas');
  const vol = parseUuid(d.vol_uuid, 'vol_uuid');
  const mode = (d.multipath_mode as MultipathMode | undefined) ?? (d.dm_replicas ? 'dm' : 'native');
  if (!['native', 'dm', 'single'].includes(mode)) bad('multipath_mode', 'must be native, dm or single');
  if (mode === 'dm' && !Array.isArray(d.dm_replicas)) bad('dm_replicas', 'is required in dm mode');
  if (mode !== 'dm') {
    if (typeof d.target_nqn !== 'string' || !d.target_nqn) bad('target_nqn', 'is required');
    if (!Array.isArray(d.portals) || d.portals.length === 0) bad('portals', 'must be a non-empty list');
  }
  if (d.ns_id !== undefined && !/^\d+$/.test(String(d.ns_id))) bad('ns_id', 'must be a namespace id');
  if (d.host_nqn !== undefined && typeof d.host_nqn !== 'string') bad('host_nqn', 'must be a string');
  return {
    ...(d as unknown as ConnectionData),
    vol_uuid: vol,
    multipath_mode: mode,
    ns_id: d.ns_id === undefined ? undefined : String(d.ns_id),
  };
}

export function toAttachSpec(data: ConnectionData): AttachSpec {
  const volUuid = parseUuid(data.vol_uuid, 'vol_uuid');
  const nguid = data.volume_nguid ? normHex(data.volume_nguid) : undefined;
  if (nguid !== undefined && !/^[0-9a-f]{32}$/.test(nguid)) bad('volume_nguid', 'must be 32 hex digits');
  let targets: TargetSpec[];
  if (data.multipath_mode === 'dm') {
    const reps = data.dm_replicas ?? [];
    if (reps.length === 0) bad('dm_replicas', 'must be a non-empty list');
    targets = reps.map((r, i) => {
      if (typeof r?.target_nqn !== 'string' || !r.target_nqn) bad(`dm_replicas[${i}].target_nqn`, 'is required');
      if (!Array.isArray(r.portals) || !r.portals.length) bad(`dm_replicas[${i}].portals`, 'must be a non-empty list');
      return {
        nqn: r.target_nqn,
        uuid: r.vol_uuid ? parseUuid(r.vol_uuid, `dm_replicas[${i}].vol_uuid`) : volUuid,
        portals: r.portals.map((p, j) => parsePortal(p, `dm_replicas[${i}].portals[${j}]`)),
      };
    });
  } else {
    targets = [
      {
        nqn: data.target_nqn!,
        uuid: volUuid,
        nguid,
        nsid: data.ns_id,
        portals: (data.portals ?? []).map((p, j) => parsePortal(p, `portals[${j}]`)),
      },
    ];
  }
  return { mode: data.multipath_mode, volUuid, hostNqn: data.host_nqn || undefined, targets };
}

export function portalLabel(p: PortalSpec): string {
  return `${p.transport}://${p.address.includes(':') ? `[${p.address}]` : p.address}:${p.port}`;
}
