/**
 * LightOS API v2 JSON → domain values. Lenient where LightOS versions and clients differ
 * (sizes as `"10 GiB"`, `"10 gib"`, or bytes as number or string; `compression` as boolean or
 * string; nvmeEndpoint as `ip:port` or `[ipv6]:port`), strict where the driver depends on a
 * field (a volume without UUID, name, state or size is a malformed answer).
 */
import { isIP } from 'node:net';
import type { AnaState } from '../../driver/model.ts';
import type { BackendCapacity, BackendSnapshot, BackendState, BackendVolume, ClusterInfo } from '../../driver/ports.ts';
import { GiB } from '../../shared/units.ts';

export { GiB };

/** LightOS's ACL sentinel for "no host": it never stores an empty list. */
export const ALLOW_NONE = 'ALLOW_NONE';
export const ALLOW_ANY = 'ALLOW_ANY';
const DEFAULT_NVME_PORT = 4420;

const STATES: readonly BackendState[] = [
  'Unknown',
  'Creating',
  'Available',
  'Deleting',
  'Deleted',
  'Failed',
  'Updating',
  'Migrating',
  'Rollback',
];
const UNITS: Record<string, number> = { b: 1, kib: 1024, mib: 1024 ** 2, gib: GiB, tib: 1024 ** 4, pib: 1024 ** 5 };

/** The answer does not have the shape the API documents. */
export class MalformedAnswer extends Error {}

type Obj = Record<string, unknown>;

function obj(v: unknown, what: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new MalformedAnswer(`${what} is not a JSON object`);
  return v as Obj;
}

function str(o: Obj, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v === '') throw new MalformedAnswer(`${what} has no ${key}`);
  return v;
}

/** A non-empty string field, or undefined (LightOS renders unset strings as ""). */
function optStr(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Bytes from `"10 GiB"`, `"10 gib"`, `"512MiB"`, `10737418240` or `"10737418240"`; undefined otherwise. */
export function parseSizeBytes(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v) : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v);
  if (!m) return undefined;
  const unit = UNITS[(m[2] || 'b').toLowerCase()];
  return unit ? Math.round(Number(m[1]) * unit) : undefined;
}

function count(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

function bool(v: unknown): boolean {
  return v === true || (typeof v === 'string' && v.toLowerCase() === 'true');
}

/** `nvmeEndpoint` → address and port: `10.0.0.1:4420`, `[fe80::1]:4420`, `host:4420`, or a bare address (port 4420). */
export function parseNvmeEndpoint(v: unknown): { address: string; port: number } | undefined {
  if (typeof v !== 'string') return undefined;
  const s = v.trim();
  let address: string;
  let port = DEFAULT_NVME_PORT;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracketed) {
    address = bracketed[1];
    if (isIP(address) !== 6) return undefined;
    if (bracketed[2] !== undefined) port = Number(bracketed[2]);
  } else if (isIP(s) === 6) {
    address = s; // unbracketed IPv6 cannot carry a port
  } else {
    const m = /^([^:\s]+)(?::(\d+))?$/.exec(s);
    if (!m) return undefined;
    address = m[1];
    if (m[2] !== undefined) port = Number(m[2]);
  }
  return port >= 1 && port <= 65535 ? { address, port } : undefined;
}

/** `{values: [...]}` → host list, with the `ALLOW_NONE` sentinel read as "nobody". */
export function aclHosts(v: unknown): string[] {
  const values = typeof v === 'object' && v !== null ? (v as Obj).values : undefined;
  if (values === undefined || values === null) return [];
  if (!Array.isArray(values) || values.some((x) => typeof x !== 'string'))
    throw new MalformedAnswer('acl.values is not a list of strings');
  return (values as string[]).filter((x) => x !== ALLOW_NONE);
}

/** Host list → `{values}`, writing "nobody" as the `ALLOW_NONE` sentinel LightOS expects. */
export function aclValues(hosts: string[]): { values: string[] } {
  return { values: hosts.length > 0 ? [...hosts] : [ALLOW_NONE] };
}

export interface PlacementEntry {
  nodeUuid: string;
  anaState: AnaState;
}

export interface WireVolume {
  volume: BackendVolume;
  sizeBytes: number;
  /** For If-Match; "" when the backend sent none. */
  etag: string;
  /** The simulator's `replicaPlacement` extension; undefined from a real LightOS. */
  placement?: PlacementEntry[];
}

function state(v: unknown): BackendState {
  return typeof v === 'string' && (STATES as readonly string[]).includes(v) ? (v as BackendState) : 'Unknown';
}

const ANA: readonly AnaState[] = ['optimized', 'non-optimized', 'inaccessible', 'persistent-loss', 'change', 'unknown'];

function placement(v: unknown): PlacementEntry[] | undefined {
  if (!Array.isArray(v)) return undefined;
  return v.map((e, i) => {
    const o = obj(e, `replicaPlacement[${i}]`);
    const ana =
      typeof o.anaState === 'string' && (ANA as readonly string[]).includes(o.anaState)
        ? (o.anaState as AnaState)
        : 'unknown';
    return { nodeUuid: str(o, 'nodeUUID', `replicaPlacement[${i}]`), anaState: ana };
  });
}

export function parseVolume(body: unknown): WireVolume {
  const o = obj(body, 'volume');
  const uuid = str(o, 'UUID', 'volume');
  const what = `volume ${uuid}`;
  const sizeBytes = parseSizeBytes(o.size);
  if (sizeBytes === undefined) throw new MalformedAnswer(`${what} has no readable size (${JSON.stringify(o.size)})`);
  const nsid = count(o.nsid);
  const volume: BackendVolume = {
    uuid,
    name: str(o, 'name', what),
    sizeGb: sizeBytes / GiB,
    replicas: count(o.replicaCount) ?? 1,
    compression: bool(o.compression),
    state: state(str(o, 'state', what)),
    acl: aclHosts(o.acl),
  };
  if (nsid) volume.nsid = nsid;
  const nguid = optStr(o.nguid);
  if (nguid) volume.nguid = nguid;
  const qos = optStr(o.qosPolicyUUID);
  if (qos) volume.qosPolicyUuid = qos;
  const src = optStr(o.sourceSnapshotUUID);
  if (src) volume.sourceSnapshotUuid = src;
  return {
    volume,
    sizeBytes,
    etag: typeof o.ETag === 'string' ? o.ETag : '',
    placement: placement(o.replicaPlacement),
  };
}

export function parseSnapshot(body: unknown): BackendSnapshot {
  const o = obj(body, 'snapshot');
  const uuid = str(o, 'UUID', 'snapshot');
  const sizeBytes = parseSizeBytes(o.size);
  return {
    uuid,
    name: str(o, 'name', `snapshot ${uuid}`),
    sourceVolumeUuid: optStr(o.sourceVolumeUUID) ?? '',
    sizeGb: (sizeBytes ?? 0) / GiB,
    state: state(str(o, 'state', `snapshot ${uuid}`)),
  };
}

export interface WireNode {
  uuid: string;
  name?: string;
  endpoint?: { address: string; port: number };
  rawEndpoint: unknown;
  /** `state` is `Active`, or absent (older answers, the Cinder test fixtures). */
  active: boolean;
}

export function parseNodes(body: unknown): WireNode[] {
  const nodes = obj(body, 'nodes answer').nodes;
  if (!Array.isArray(nodes)) throw new MalformedAnswer('nodes answer has no nodes list');
  return nodes.map((n, i) => {
    const o = obj(n, `nodes[${i}]`);
    return {
      uuid: str(o, 'UUID', `nodes[${i}]`),
      name: optStr(o.name),
      endpoint: parseNvmeEndpoint(o.nvmeEndpoint),
      rawEndpoint: o.nvmeEndpoint,
      active: o.state === undefined || o.state === 'Active',
    };
  });
}

export function parseClusterInfo(body: unknown): ClusterInfo {
  const o = obj(body, 'cluster info');
  return { uuid: str(o, 'UUID', 'cluster info'), subsystemNqn: str(o, 'subsystemNQN', 'cluster info') };
}

/** `GET /api/v2/cluster` statistics (the fields the Proxmox plugin reads), in GiB; null when absent. */
export function parseCapacity(body: unknown): BackendCapacity {
  const stats = obj(body, 'cluster').statistics;
  const s = typeof stats === 'object' && stats !== null ? (stats as Obj) : {};
  const total = parseSizeBytes(s.estimatedLogicalStorage);
  const free = parseSizeBytes(s.estimatedFreeLogicalStorage);
  return { totalGb: total === undefined ? null : total / GiB, freeGb: free === undefined ? null : free / GiB };
}
