/**
 * A temp directory standing in for nvmet's configfs, for unit tests of the nvmet data plane.
 *
 * A plain directory does not behave like configfs, so this stand-in does by hand what the kernel
 * does, where the data plane depends on it (each rule was seen on Debian's 6.1 kernel; see
 * configfs.ts and nvmet-data-plane.ts):
 * - mkdir of a subsystem, namespace, port, ANA group or host creates the item's attribute files
 *   and default groups with the kernel's defaults (a new ANA group is `inaccessible`, a new
 *   namespace gets a random device_uuid, every port has ANA group 1 `optimized`); mkdir anywhere
 *   else is EPERM, a bad ANA group id (not 2..128) EINVAL.
 * - rmdir removes those again, but is ENOTEMPTY while user-made children remain (links,
 *   namespaces, ANA groups), EBUSY while a link points at the item, EPERM for default groups.
 * - symlink only where nvmet takes links (a port's subsystems, a subsystem's allowed_hosts),
 *   to an existing item; a port without addr_trtype cannot be enabled (EINVAL); no host links
 *   while attr_allow_any_host is 1 (EINVAL).
 * - writes go to existing attributes only (ENOENT otherwise) and follow the kernel's refusals:
 *   device_* while enabled EBUSY, buffered_io while enabled EINVAL, enable without a usable
 *   device_path EINVAL (or without buffered_io when `odirect: false`), addr_* of an enabled port
 *   EACCES, bad ana_state or ana_grpid EINVAL, allow_any_host with hosts EINVAL, revalidate_size
 *   on a disabled namespace EINVAL; revalidate_size is write-only (EACCES on read).
 * Hosts, controllers and ANA events are not modelled: the kernel tests (test/kernel) cover them.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigfsError, NodeConfigfs } from '../configfs.ts';

type Kind = 'subsystem' | 'namespace' | 'port' | 'anagroup' | 'host';

const ITEM_PATTERNS: [Kind, RegExp][] = [
  ['subsystem', /^subsystems\/[^/]+$/],
  ['namespace', /^subsystems\/[^/]+\/namespaces\/[^/]+$/],
  ['port', /^ports\/[^/]+$/],
  ['anagroup', /^ports\/[^/]+\/ana_groups\/[^/]+$/],
  ['host', /^hosts\/[^/]+$/],
];

const ANA_STATES = ['optimized', 'non-optimized', 'inaccessible', 'persistent-loss', 'change'];

function kindOf(rel: string): Kind | undefined {
  return ITEM_PATTERNS.find(([, re]) => re.test(rel))?.[0];
}

/** Files (name → initial value) and default groups (names ending in '/') of a new item. */
function defaults(kind: Kind, revalidateSize: boolean, hostAuth = false): Record<string, string> {
  switch (kind) {
    case 'subsystem':
      return {
        'allowed_hosts/': '',
        'namespaces/': '',
        attr_allow_any_host: '0',
        attr_model: 'Linux',
        attr_serial: 'fd0bd8b5a59da4ad',
        attr_version: '1.3',
      };
    case 'namespace':
      return {
        ana_grpid: '1',
        buffered_io: '0',
        device_nguid: '00000000-0000-0000-0000-000000000000',
        device_path: '',
        device_uuid: randomUUID(),
        enable: '0',
        ...(revalidateSize ? { revalidate_size: '' } : {}),
      };
    case 'port':
      return {
        addr_adrfam: '',
        addr_traddr: '',
        addr_treq: 'not specified',
        addr_trsvcid: '',
        addr_trtype: '',
        'ana_groups/': '',
        'ana_groups/1/': '',
        'ana_groups/1/ana_state': 'optimized',
        'referrals/': '',
        'subsystems/': '',
      };
    case 'anagroup':
      return { ana_state: 'inaccessible' };
    case 'host':
      // CONFIG_NVME_TARGET_AUTH's attributes and their defaults (drivers/nvme/target/configfs.c).
      return hostAuth
        ? { dhchap_key: '', dhchap_ctrl_key: '', dhchap_hash: 'hmac(sha256)', dhchap_dhgroup: 'null' }
        : {};
  }
}

function fail(op: string, rel: string, code: string, value?: string): never {
  throw new ConfigfsError(op, rel, code, value);
}

export interface StandInOptions {
  /** Namespaces have `revalidate_size` (6.1 does); false models older kernels. */
  revalidateSize?: boolean;
  /** The backing files' file system has O_DIRECT; false models tmpfs (buffered_io needed). */
  odirect?: boolean;
  /** Hosts have the dhchap_* attributes (a kernel with CONFIG_NVME_TARGET_AUTH; Debian 12's has not). */
  hostAuth?: boolean;
}

export class ConfigfsStandIn extends NodeConfigfs {
  /** Every successful attribute write, in order. */
  readonly writes: { rel: string; value: string }[] = [];
  private readonly links = new Map<string, string>();

  private constructor(
    root: string,
    private readonly options: StandInOptions,
  ) {
    super(root);
  }

  static async create(options: StandInOptions = {}): Promise<ConfigfsStandIn> {
    const root = await mkdtemp(path.join(os.tmpdir(), 'nvmet-configfs-'));
    for (const d of ['hosts', 'ports', 'subsystems']) await mkdir(path.join(root, d));
    return new ConfigfsStandIn(root, options);
  }

  async destroy(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }

  override async mkdir(rel: string): Promise<void> {
    const kind = kindOf(rel);
    if (!kind || !existsSync(this.abs(path.dirname(rel)))) fail('mkdir', rel, kind ? 'ENOENT' : 'EPERM');
    if (existsSync(this.abs(rel))) fail('mkdir', rel, 'EEXIST');
    const name = path.basename(rel);
    if (kind === 'anagroup' && !(/^\d+$/.test(name) && Number(name) >= 2 && Number(name) <= 128))
      fail('mkdir', rel, 'EINVAL');
    if ((kind === 'namespace' || kind === 'port') && !/^\d+$/.test(name)) fail('mkdir', rel, 'EINVAL');
    await super.mkdir(rel);
    for (const [entry, value] of Object.entries(
      defaults(kind, this.options.revalidateSize ?? true, this.options.hostAuth),
    )) {
      if (entry.endsWith('/')) await mkdir(this.abs(path.join(rel, entry)));
      else await writeFile(this.abs(path.join(rel, entry)), `${value}\n`);
    }
  }

  override async rmdir(rel: string): Promise<void> {
    const kind = kindOf(rel);
    if (!existsSync(this.abs(rel))) fail('rmdir', rel, 'ENOENT');
    if (!kind || (kind === 'anagroup' && path.basename(rel) === '1')) fail('rmdir', rel, 'EPERM');
    if ([...this.links.values()].includes(rel)) fail('rmdir', rel, 'EBUSY');
    const own = defaults(kind, this.options.revalidateSize ?? true, this.options.hostAuth);
    const isDefault = (child: string) => child in own || `${child}/` in own;
    const userChildren = async (dir: string): Promise<boolean> => {
      for (const e of await readdir(this.abs(path.join(rel, dir)))) {
        const child = dir ? `${dir}/${e}` : e;
        if (!isDefault(child)) return true;
        if (`${child}/` in own && (await userChildren(child))) return true;
      }
      return false;
    };
    if (await userChildren('')) fail('rmdir', rel, 'ENOTEMPTY');
    await rm(this.abs(rel), { recursive: true });
  }

  override async symlink(targetRel: string, linkRel: string): Promise<void> {
    const portLink = /^(ports\/[^/]+)\/subsystems\/[^/]+$/.exec(linkRel);
    const hostLink = /^(subsystems\/[^/]+)\/allowed_hosts\/[^/]+$/.exec(linkRel);
    if (!(portLink && kindOf(targetRel) === 'subsystem') && !(hostLink && kindOf(targetRel) === 'host')) {
      fail('symlink', linkRel, 'EPERM');
    }
    if (!existsSync(this.abs(targetRel)) || !existsSync(this.abs(path.dirname(linkRel))))
      fail('symlink', linkRel, 'ENOENT');
    if (portLink && (await this.read(`${portLink[1]}/addr_trtype`)) === '') fail('symlink', linkRel, 'EINVAL');
    if (hostLink && (await this.read(`${hostLink[1]}/attr_allow_any_host`)) === '1') fail('symlink', linkRel, 'EINVAL');
    await super.symlink(targetRel, linkRel);
    this.links.set(linkRel, targetRel);
  }

  override async unlink(rel: string): Promise<void> {
    await super.unlink(rel);
    this.links.delete(rel);
  }

  override async read(rel: string): Promise<string> {
    if (path.basename(rel) === 'revalidate_size') fail('read', rel, 'EACCES');
    return super.read(rel);
  }

  override async write(rel: string, value: string): Promise<void> {
    if (!existsSync(this.abs(rel)) || (await lstat(this.abs(rel))).isDirectory()) fail('write', rel, 'ENOENT', value);
    const dir = path.dirname(rel);
    const attr = path.basename(rel);
    const kind = kindOf(dir);
    const enabled = kind === 'namespace' && (await super.read(`${dir}/enable`)) === '1';
    const refuse = (code: string) => fail('write', rel, code, value);
    if (kind === 'namespace') {
      if (enabled && ['device_path', 'device_uuid', 'device_nguid'].includes(attr)) refuse('EBUSY');
      if (enabled && attr === 'buffered_io') refuse('EINVAL');
      if (attr === 'ana_grpid' && !(Number(value) >= 1 && Number(value) <= 128)) refuse('EINVAL');
      if (attr === 'revalidate_size' && !enabled) refuse('EINVAL');
      if (attr === 'enable' && value === '1' && !enabled) {
        const device = await this.read(`${dir}/device_path`);
        if (!device || !existsSync(device)) refuse('EINVAL');
        if (this.options.odirect === false && (await this.read(`${dir}/buffered_io`)) !== '1') refuse('EINVAL');
      }
    }
    if (kind === 'port' && attr.startsWith('addr_') && (await this.list(`${dir}/subsystems`)).length > 0)
      refuse('EACCES');
    if (attr === 'ana_state' && !ANA_STATES.includes(value)) refuse('EINVAL');
    if (attr === 'attr_allow_any_host' && value === '1' && (await this.list(`${dir}/allowed_hosts`)).length > 0) {
      refuse('EINVAL');
    }
    if (attr !== 'revalidate_size') await writeFile(this.abs(rel), `${value}\n`);
    this.writes.push({ rel, value });
  }

  /** The whole tree, one line per entry (`path -> target` for links), for assertions. */
  async tree(rel = ''): Promise<string[]> {
    const out: string[] = [];
    for (const e of (await readdir(this.abs(rel))).sort()) {
      const child = rel ? `${rel}/${e}` : e;
      const st = await lstat(this.abs(child));
      if (st.isSymbolicLink()) out.push(`${child} -> ${path.relative(this.root, await readlink(this.abs(child)))}`);
      else if (st.isDirectory()) out.push(`${child}/`, ...(await this.tree(child)));
      else out.push(child);
    }
    return out;
  }
}
