/**
 * `portalis agent connector-properties`: the dict os-brick's `get_connector_properties` returns
 * for NVMe-oF (os-brick `NVMeOFConnector.get_connector_properties`), which the service's initialize_connection takes.
 */
import { randomUUID } from 'node:crypto';
import type { Connector } from '../driver/model.ts';
import type { HostPort } from './host/port.ts';
import { parseMountinfo } from './procfs.ts';
import { readNativeMultipath } from './sysfs.ts';

export interface ConnectorPropertiesOptions {
  enforceMultipath?: boolean;
  /** For tests; default crypto.randomUUID. */
  randomUuid?: () => string;
}

export interface AgentConnector extends Connector {
  nqn: string;
  nvme_hostid: string;
  dm_multipath: boolean;
}

const HOSTNQN = '/etc/nvme/hostnqn';
const HOSTID = '/etc/nvme/hostid';
/** The host NQN nvme-cli uses without `-q` (/etc/nvme/hostnqn), trimmed; null without the file. */
export async function readHostNqn(host: HostPort): Promise<string | null> {
  return (await host.readFile(HOSTNQN))?.trim() ?? null;
}

/** The host ID nvme-cli uses without `-I` (/etc/nvme/hostid), trimmed; null without it or when empty. */
export async function readHostId(host: HostPort): Promise<string | null> {
  return (await host.readFile(HOSTID))?.trim() || null;
}

const UUID_NQN_PREFIX = 'nqn.2014-08.org.nvmexpress:uuid:';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function validUuid(v: string | null | undefined): string | null {
  const u = v?.trim().toLowerCase();
  // Some firmware reports an all-zero or all-F product_uuid: useless as an identity.
  if (!u || !UUID_RE.test(u) || /^[0-]+$/.test(u) || /^[f-]+$/.test(u)) return null;
  return u;
}

/**
 * Reads /etc/nvme/hostnqn and /etc/nvme/hostid, creating what is missing so that the pair is
 * consistent: the kernel rejects a known hostnqn with a different hostid (and the reverse), and a
 * hostid that changes between connects breaks reconnects (os-brick bug #2016029). The UUID is
 * the one inside a `…:uuid:<uuid>` hostnqn, else the DMI product_uuid (what `nvme gen-hostnqn`
 * uses), else random. Existing files are never rewritten.
 */
export async function ensureHostIdentity(
  host: HostPort,
  randomUuid: () => string = randomUUID,
): Promise<{ nqn: string; hostid: string }> {
  const nqnFile = (await host.readFile(HOSTNQN))?.trim() || null;
  const idFile = validUuid(await host.readFile(HOSTID));
  if (nqnFile && idFile) return { nqn: nqnFile, hostid: idFile };

  const fromNqn = nqnFile?.startsWith(UUID_NQN_PREFIX) ? validUuid(nqnFile.slice(UUID_NQN_PREFIX.length)) : null;
  const uuid =
    fromNqn ?? idFile ?? validUuid(await host.readFile('/sys/class/dmi/id/product_uuid')) ?? randomUuid().toLowerCase();
  const nqn = nqnFile ?? `${UUID_NQN_PREFIX}${uuid}`;
  const hostid = idFile ?? uuid;
  // Both written together, hostid first: a crash in between leaves a hostid from which the
  // same hostnqn is derived again on the next run.
  if (!idFile) await host.writeFile(HOSTID, `${hostid}\n`, { mode: 0o644 });
  if (!nqnFile) await host.writeFile(HOSTNQN, `${nqn}\n`, { mode: 0o644 });
  return { nqn, hostid };
}

/** The root filesystem's UUID via mountinfo and /dev/disk/by-uuid, or null (overlay, tmpfs, NFS…). */
export async function rootFsUuid(host: HostPort): Promise<string | null> {
  // The last mount on / is the one in effect.
  const source = parseMountinfo((await host.readFile('/proc/self/mountinfo')) ?? '')
    .filter((m) => m.mountPoint === '/')
    .pop()?.source;
  if (!source?.startsWith('/dev/')) return null;
  const dev = await host.realpath(source);
  for (const uuid of await host.readdir('/dev/disk/by-uuid')) {
    if ((await host.realpath(`/dev/disk/by-uuid/${uuid}`)) === dev) return uuid;
  }
  return null;
}

/** multipathd installed (the binary runs at all) and the dm_multipath module loaded. */
async function dmMultipathUsable(host: HostPort): Promise<boolean> {
  if (!(await host.exists('/sys/module/dm_multipath'))) return false;
  const r = await host.run('multipathd', ['show', 'daemon'], { timeoutMs: 5000 });
  return r.code !== 127;
}

export async function connectorProperties(
  host: HostPort,
  opts: ConnectorPropertiesOptions = {},
): Promise<AgentConnector> {
  const { nqn, hostid } = await ensureHostIdentity(host, opts.randomUuid);
  const [native, dm, uuid] = await Promise.all([readNativeMultipath(host), dmMultipathUsable(host), rootFsUuid(host)]);
  // Loopback and IPv6 link-local addresses cannot reach a storage cluster.
  const ips = host
    .networkAddresses()
    .filter((a) => !a.internal && !a.address.toLowerCase().startsWith('fe80:'))
    .map((a) => a.address);
  return {
    platform: host.machine(),
    os_type: 'linux',
    ip: ips.find((a) => !a.includes(':')) ?? ips[0] ?? '127.0.0.1',
    host_ips: ips,
    host: host.hostname(),
    multipath: native === true || dm,
    enforce_multipath: opts.enforceMultipath ?? false,
    nqn,
    nvme_hostid: hostid,
    uuid,
    nvme_native_multipath: native === true,
    dm_multipath: dm,
  };
}
