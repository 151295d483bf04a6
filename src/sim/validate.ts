/**
 * Request-body parsing for the simulator's LightOS routes. Accepts the forms real clients send
 * (the Cinder driver sends `size: "<N> gib"`, `replicaCount` as a string, `compression: "True"`,
 * and `null` for unset optional keys; the Proxmox plugin sends `size` as a byte string) and
 * rejects everything else with a 400 that names the field.
 */
import { isIP } from 'node:net';
import { badRequest, SimError } from './model.ts';
import type { CreateVolumeSpec, UpdateVolumePatch } from './cluster.ts';

const UNITS: Record<string, number> = { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };
/** LightOS allocates in 4 KiB blocks; the Proxmox plugin rounds sizes up to 4096 for that reason. */
const BLOCK = 4096;
const NAME = /^[A-Za-z0-9._-]{1,256}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const ALLOW_NONE = 'ALLOW_NONE';
export const ALLOW_ANY = 'ALLOW_ANY';

type Body = Record<string, unknown>;

function asObject(body: unknown): Body {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw badRequest('request body must be a JSON object');
  return body as Body;
}

/** Cinder sends `null` for optional keys it has no value for; treat null and "" as absent. */
function present(v: unknown): boolean {
  return v !== undefined && v !== null && v !== '';
}

/** `"<N> gib"`, `"<N> GiB"` (any of B/KiB/MiB/GiB/TiB, any case), a byte count as number or digits. */
export function parseSize(v: unknown, field = 'size'): number {
  let bytes: number | undefined;
  if (typeof v === 'number') bytes = v;
  else if (typeof v === 'string') {
    const m = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(v);
    const unit = m ? UNITS[(m[2] || 'b').toLowerCase()] : undefined;
    if (m && unit) bytes = Number(m[1]) * unit;
  }
  if (bytes === undefined)
    throw badRequest(`${field} must be a byte count or a string like "10 GiB", got ${JSON.stringify(v)}`);
  if (!Number.isSafeInteger(bytes) || bytes <= 0)
    throw badRequest(`${field} must be a positive whole number of bytes, got ${JSON.stringify(v)}`);
  if (bytes % BLOCK !== 0) throw badRequest(`${field} must be a multiple of ${BLOCK} bytes, got ${bytes}`);
  return bytes;
}

function parseReplicaCount(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 3)
    throw badRequest(`replicaCount must be 1, 2 or 3, got ${JSON.stringify(v)}`);
  return n;
}

function parseBool(v: unknown, field: string): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
  throw badRequest(`${field} must be "True" or "False", got ${JSON.stringify(v)}`);
}

function parseName(v: unknown, field: string): string {
  if (typeof v !== 'string' || !NAME.test(v)) {
    throw badRequest(`${field} must be 1-256 characters of letters, digits, '.', '_' or '-', got ${JSON.stringify(v)}`);
  }
  return v;
}

function parseUuid(v: unknown, field: string): string {
  if (typeof v !== 'string' || !UUID.test(v)) throw badRequest(`${field} must be a UUID, got ${JSON.stringify(v)}`);
  return v.toLowerCase();
}

function listValues(v: unknown, field: string): string[] {
  const values = typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Body).values : undefined;
  if (!Array.isArray(values) || values.some((x) => typeof x !== 'string')) {
    throw badRequest(`${field} must look like {"values": ["..."]}`);
  }
  return values as string[];
}

/** A host NQN as NVMe defines it: "nqn." prefix, at most 223 bytes, no whitespace. */
function isNqn(s: string): boolean {
  return s.startsWith('nqn.') && Buffer.byteLength(s) <= 223 && !/\s/.test(s);
}

/**
 * `acl.values`: host NQNs, or the sentinel `ALLOW_NONE` alone (stored as the empty list).
 *
 * `ALLOW_ANY` is refused, by decision: nvmet grants access per subsystem, not per namespace,
 * and the simulated cluster has one subsystem for every volume (as LightOS), so "any host" on
 * one volume would have to open the whole subsystem: every host could connect and see every
 * namespace, which is not what LightOS does with that volume's ACL. No client of ours sends
 * it (the LightOS adapter and the Cinder driver write host NQNs and `ALLOW_NONE`). Whoever
 * wants an open target says so for the whole simulator: `PORTALIS_SIM_NVMET_ALLOW_ANY_HOST`.
 */
export function parseAcl(v: unknown, field = 'acl'): string[] {
  const values = listValues(v, field);
  if (values.length === 1 && values[0] === ALLOW_NONE) return [];
  for (const x of values) {
    if (x === ALLOW_NONE) throw badRequest(`${field}.values: ALLOW_NONE cannot be combined with host NQNs`);
    if (x === ALLOW_ANY)
      throw badRequest(`${field}.values: ALLOW_ANY is not supported by the simulator; list host NQNs`);
    if (!isNqn(x)) throw badRequest(`${field}.values: '${x}' is not an NQN (nqn.…, at most 223 bytes)`);
    // The nvmet plane names a host by a configfs folder (hosts/<nqn>): no '/' there.
    if (x.includes('/'))
      throw badRequest(`${field}.values: '${x}': the simulator cannot serve a host NQN with '/' in it`);
  }
  return [...new Set(values)];
}

/** `IPAcl.values`: IPs or CIDRs, or `ALLOW_ANY` / `ALLOW_NONE` alone (the latter stored as []). */
export function parseIpAcl(v: unknown, field = 'IPAcl'): string[] {
  const values = listValues(v, field);
  if (values.length === 1 && values[0] === ALLOW_NONE) return [];
  if (values.length === 1 && values[0] === ALLOW_ANY) return [ALLOW_ANY];
  for (const x of values) {
    const [ip, prefix, extra] = x.split('/');
    const bits = isIP(ip);
    const okPrefix = prefix === undefined || (/^\d+$/.test(prefix) && Number(prefix) <= (bits === 6 ? 128 : 32));
    if (!bits || !okPrefix || extra !== undefined)
      throw badRequest(`${field}.values: '${x}' is not an IP address or CIDR`);
  }
  return [...new Set(values)];
}

export function parseCreateVolume(raw: unknown): CreateVolumeSpec {
  const b = asObject(raw);
  if (!present(b.name)) throw badRequest('name is required');
  if (!present(b.size)) throw badRequest('size is required');
  if (!present(b.replicaCount)) throw badRequest('replicaCount is required');
  return {
    name: parseName(b.name, 'name'),
    sizeBytes: parseSize(b.size),
    replicaCount: parseReplicaCount(b.replicaCount),
    compression: present(b.compression) ? parseBool(b.compression, 'compression') : false,
    acl: present(b.acl) ? parseAcl(b.acl) : [],
    ipAcl: present(b.IPAcl) ? parseIpAcl(b.IPAcl) : [ALLOW_ANY],
    sourceSnapshotUuid: present(b.sourceSnapshotUUID)
      ? parseUuid(b.sourceSnapshotUUID, 'sourceSnapshotUUID')
      : undefined,
    sourceSnapshotName: present(b.sourceSnapshotName)
      ? parseName(b.sourceSnapshotName, 'sourceSnapshotName')
      : undefined,
    qosPolicyUuid: present(b.qosPolicyUUID) ? parseUuid(b.qosPolicyUUID, 'qosPolicyUUID') : undefined,
  };
}

/** PUT body: any of `acl`, `IPAcl`, `size`; `UUID`, when given (Cinder's extend sends it), must match the path. */
export function parseUpdateVolume(raw: unknown, pathUuid: string): UpdateVolumePatch {
  const b = asObject(raw);
  if (present(b.UUID) && String(b.UUID).toLowerCase() !== pathUuid.toLowerCase()) {
    throw badRequest(`UUID in the body (${String(b.UUID)}) does not match the path (${pathUuid})`);
  }
  const patch: UpdateVolumePatch = {};
  if (present(b.acl)) patch.acl = parseAcl(b.acl);
  if (present(b.IPAcl)) patch.ipAcl = parseIpAcl(b.IPAcl);
  if (present(b.size)) patch.sizeBytes = parseSize(b.size);
  if (!patch.acl && !patch.ipAcl && patch.sizeBytes === undefined)
    throw badRequest('nothing to update: give acl, IPAcl and/or size');
  return patch;
}

export function parseCreateSnapshot(raw: unknown): {
  name: string;
  sourceVolumeUuid?: string;
  sourceVolumeName?: string;
} {
  const b = asObject(raw);
  if (!present(b.name)) throw badRequest('name is required');
  if (!present(b.sourceVolumeUUID) && !present(b.sourceVolumeName))
    throw badRequest('sourceVolumeUUID or sourceVolumeName is required');
  return {
    name: parseName(b.name, 'name'),
    sourceVolumeUuid: present(b.sourceVolumeUUID) ? parseUuid(b.sourceVolumeUUID, 'sourceVolumeUUID') : undefined,
    sourceVolumeName: present(b.sourceVolumeName) ? parseName(b.sourceVolumeName, 'sourceVolumeName') : undefined,
  };
}

/** `If-Match` as sent: the LightOS Cinder driver sends the raw ETag; RFC 9110 clients quote it. */
export function parseIfMatch(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const v = header.trim().replace(/^W\//, '');
  if (v === '') throw new SimError(400, 'If-Match header is empty');
  return v.startsWith('"') && v.endsWith('"') && v.length >= 2 ? v.slice(1, -1) : v;
}

/** A `?name=` style query value: absent, or exactly one string. */
export function queryString(v: unknown, field: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw badRequest(`query parameter ${field} must be given once`);
  return v;
}

/** LightOS's `ListVolumeRequest.limit`: "default/maximum value is 1000 volumes" (durosapiv2.proto). */
export const MAX_LIST_LIMIT = 1000;

/**
 * The paging of `GET .../volumes`: `limit` (a whole number; 0 or absent: no limit, larger than
 * 1000: 1000) and `offsetUUID` (the list starts after that volume).
 */
export function parseListPaging(query: Record<string, unknown>): { limit: number; offsetUuid?: string } {
  const rawLimit = queryString(query.limit, 'limit');
  let limit = 0;
  if (rawLimit !== undefined && rawLimit !== '') {
    if (!/^\d{1,9}$/.test(rawLimit)) throw badRequest(`limit must be a whole number, got ${JSON.stringify(rawLimit)}`);
    limit = Math.min(Number(rawLimit), MAX_LIST_LIMIT);
  }
  const offset = queryString(query.offsetUUID, 'offsetUUID');
  return { limit, offsetUuid: offset ? parseUuid(offset, 'offsetUUID').toLowerCase() : undefined };
}
