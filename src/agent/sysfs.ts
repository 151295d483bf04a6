/**
 * What the kernel says, read from sysfs through the host port: controllers, subsystems and
 * namespace block devices. Small readers that return null/[] when a device vanished mid-read
 * (os-brick's `sysfs_property`), and no decisions. Layout: docs/KERNEL.md §1.
 */
import { normHex, stripBrackets } from './connection-data.ts';
import type { HostPort } from './host/port.ts';

export interface NvmeAddress {
  traddr: string;
  trsvcid: string | null;
  srcAddr?: string;
  hostTraddr?: string;
  hostIface?: string;
}

/**
 * Parses the controller `address` attribute: `traddr=…,trsvcid=…` optionally followed by
 * `,src_addr=…` (kernel 6.x TCP; os-brick bug #2035811) or `,host_traddr=…`/`,host_iface=…`.
 * Older kernels/nvme-cli (< 2.2.1) separated the pairs with spaces. IPv6 may be bracketed.
 */
export function parseAddress(text: string): NvmeAddress {
  const kv = new Map<string, string>();
  for (const part of text.trim().split(/[,\s]+/)) {
    const eq = part.indexOf('=');
    if (eq > 0) kv.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const a: NvmeAddress = { traddr: stripBrackets(kv.get('traddr') ?? ''), trsvcid: kv.get('trsvcid') ?? null };
  if (kv.has('src_addr')) a.srcAddr = stripBrackets(kv.get('src_addr')!);
  if (kv.has('host_traddr')) a.hostTraddr = stripBrackets(kv.get('host_traddr')!);
  if (kv.has('host_iface')) a.hostIface = kv.get('host_iface')!;
  return a;
}

/** One spelling per address: IPv6 compressed and lower case (`fd00:0::1` = `[FD00::1]`). */
export function canonicalAddress(address: string): string {
  const a = stripBrackets(address.trim()).toLowerCase();
  if (!a.includes(':')) return a;
  try {
    return stripBrackets(new URL(`http://[${a}]/`).hostname);
  } catch {
    return a; // zone ids (fe80::1%eth0) are not URL syntax; compare as written
  }
}

export interface Controller {
  name: string;
  nqn: string;
  transport: string;
  address: NvmeAddress;
  /** `live`, `connecting`, `resetting`, `deleting`, … or null when it vanished. */
  state: string | null;
  /** null where the kernel has no `hostnqn` attribute. */
  hostNqn: string | null;
}

async function attr(host: HostPort, path: string): Promise<string | null> {
  const v = await host.readFile(path);
  return v === null ? null : v.trim();
}

export async function readController(host: HostPort, name: string): Promise<Controller | null> {
  const dir = `/sys/class/nvme/${name}`;
  const [nqn, transport, address, state, hostNqn] = await Promise.all(
    ['subsysnqn', 'transport', 'address', 'state', 'hostnqn'].map((a) => attr(host, `${dir}/${a}`)),
  );
  if (nqn === null || address === null) return null; // gone, or a PCIe controller without fabrics attributes
  return { name, nqn, transport: transport ?? '', address: parseAddress(address), state, hostNqn };
}

/** Fabrics controllers, optionally only those of one subsystem NQN. */
export async function listControllers(host: HostPort, nqn?: string): Promise<Controller[]> {
  const names = (await host.readdir('/sys/class/nvme')).filter((n) => /^nvme\d+$/.test(n));
  const all = await Promise.all(names.map((n) => readController(host, n)));
  return all.filter((c): c is Controller => c !== null && (nqn === undefined || c.nqn === nqn));
}

/** Namespace block devices (per-path or plain) whose sysfs dir sits under the controller. */
export async function namespacesUnderController(host: HostPort, ctrl: string): Promise<string[]> {
  return (await host.readdir(`/sys/class/nvme/${ctrl}`)).filter((n) => /^nvme\d+(c\d+)?n\d+$/.test(n));
}

export interface Subsystem {
  name: string;
  nqn: string;
  iopolicy: string | null;
}

export async function findSubsystem(host: HostPort, nqn: string): Promise<Subsystem | null> {
  for (const name of await host.readdir('/sys/class/nvme-subsystem')) {
    const dir = `/sys/class/nvme-subsystem/${name}`;
    if ((await attr(host, `${dir}/subsysnqn`)) === nqn)
      return { name, nqn, iopolicy: await attr(host, `${dir}/iopolicy`) };
  }
  return null;
}

export type NsKind = 'head' | 'path' | 'plain';

export interface BlockNamespace {
  name: string;
  /** head: native multipath `nvmeSnI`; path: hidden `nvmeScCnI`; plain: `nvmeCnI` with multipath off. */
  kind: NsKind;
  nsid: string | null;
  uuid: string | null;
  nguid: string | null;
  wwid: string | null;
  sizeBytes: number | null;
  /** `major:minor` */
  dev: string | null;
  subsysnqn: string | null;
  /** The controller behind a path or plain namespace (null for a head). */
  controller: string | null;
  anaState: string | null;
}

const HEAD_OR_PLAIN = /^nvme\d+n\d+$/;
const PER_PATH = /^nvme\d+c\d+n\d+$/;

/**
 * The device a namespace is used through: a hidden per-path `nvmeScCnI` is used through its head
 * `nvmeSnI` (S: the subsystem instance, I: the head index); any other name is its own.
 */
export function usedThrough(name: string): string {
  return name.replace(/^(nvme\d+)c\d+(n\d+)$/, '$1$2');
}

function basename(p: string | null): string | null {
  return p === null ? null : (p.split('/').pop() ?? null);
}

function dirname(p: string): string {
  return p.slice(0, p.lastIndexOf('/')) || '/';
}

/**
 * Reads one namespace block device. The parent of its sysfs directory tells what it is: a head's
 * parent is the subsystem, a path's or plain namespace's parent is its controller. That is read
 * from the real path rather than trusted from the name: a head's number is the subsystem's, not
 * a controller's (733e4b69d508), and before 2019 a per-path name carried the cntlid.
 */
export async function readBlockNamespace(host: HostPort, name: string): Promise<BlockNamespace | null> {
  const dir = `/sys/block/${name}`;
  const real = await host.realpath(dir);
  if (real === null) return null;
  const parent = dirname(real);
  const parentName = basename(parent) ?? '';
  const device = basename(await host.realpath(`${dir}/device`));
  const underSubsystem = parentName.startsWith('nvme-subsys') || (device?.startsWith('nvme-subsys') ?? false);
  const kind: NsKind = PER_PATH.test(name) ? 'path' : underSubsystem ? 'head' : 'plain';
  const read = (a: string) => attr(host, `${dir}/${a}`);
  const [nsid, uuid, nguid, wwid, size, dev, ana, ownNqn] = await Promise.all(
    ['nsid', 'uuid', 'nguid', 'wwid', 'size', 'dev', 'ana_state', 'subsysnqn'].map(read),
  );
  if (nsid === null && wwid === null) return null; // vanished between readdir and read
  // Kernels differ in where the NQN is: some namespaces carry `subsysnqn`, otherwise the parent
  // (subsystem or controller) has it, reached by `device` or, without that link, by the real path.
  const subsysnqn =
    ownNqn ?? (await attr(host, `${dir}/device/subsysnqn`)) ?? (await attr(host, `${parent}/subsysnqn`));
  const controller =
    kind === 'head'
      ? null
      : device && /^nvme\d+$/.test(device)
        ? device
        : /^nvme\d+$/.test(parentName)
          ? parentName
          : null;
  return {
    name,
    kind,
    nsid,
    uuid: uuid ? uuid.toLowerCase() : null,
    nguid: nguid ? normHex(nguid) : null,
    wwid,
    sizeBytes: size === null ? null : Number(size) * 512, // sysfs `size` is in 512-byte sectors
    dev,
    subsysnqn,
    controller,
    anaState: ana,
  };
}

/** Every NVMe namespace block device in /sys/block (heads, plain and hidden per-path). */
export async function listNamespaces(host: HostPort): Promise<BlockNamespace[]> {
  const names = (await host.readdir('/sys/block')).filter((n) => HEAD_OR_PLAIN.test(n) || PER_PATH.test(n));
  return (await Promise.all(names.map((n) => readBlockNamespace(host, n)))).filter(
    (n): n is BlockNamespace => n !== null,
  );
}

/** The dm devices holding a block device (`/sys/block/<dev>/holders/dm-*`), with their names. */
export async function dmHolders(
  host: HostPort,
  dev: string,
): Promise<{ dm: string; name: string | null; uuid: string | null }[]> {
  const holders = (await host.readdir(`/sys/block/${dev}/holders`)).filter((h) => h.startsWith('dm-'));
  return Promise.all(
    holders.map(async (dm) => ({
      dm,
      name: await attr(host, `/sys/block/${dm}/dm/name`),
      uuid: await attr(host, `/sys/block/${dm}/dm/uuid`),
    })),
  );
}

export async function readNativeMultipath(host: HostPort): Promise<boolean | null> {
  // Missing file: CONFIG_NVME_MULTIPATH off (or nvme_core not loaded).
  const v = await attr(host, '/sys/module/nvme_core/parameters/multipath');
  return v === null ? null : v === 'Y';
}
