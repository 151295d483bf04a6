/**
 * One nvmet subsystem's tree in configfs (the layout and the kernel rules are in the header of
 * nvmet-data-plane.ts): where each item lives, and the steps that change it. It holds no record
 * of volumes or nodes; NvmetDataPlane decides what to do and calls these in order.
 */
import net from 'node:net';
import type { SimNodeEndpoint } from '../data-plane.ts';
import { type Configfs, ensureDir, ensureLink, errnoOf, removeEntry, writeIfChanged } from './configfs.ts';

/** An enabled namespace found in the tree (after a restart of the simulator). */
export interface FoundNamespace {
  nsid: number;
  volumeUuid: string;
  /** device_path; empty when unset. */
  file: string;
  anaGroup: number;
}

export class SubsystemTree {
  /** The subsystem's NQN; empty until the plane starts. */
  nqn = '';

  constructor(readonly fs: Configfs) {}

  // ---- paths ----
  get sub(): string {
    return `subsystems/${this.nqn}`;
  }
  ns(nsid: number): string {
    return `${this.sub}/namespaces/${nsid}`;
  }
  port(node: SimNodeEndpoint): string {
    return `ports/${node.index + 1}`;
  }
  portLink(node: SimNodeEndpoint): string {
    return `${this.port(node)}/subsystems/${this.nqn}`;
  }
  group(node: SimNodeEndpoint, g: number): string {
    return `${this.port(node)}/ana_groups/${g}`;
  }
  hostLink(host: string): string {
    return `${this.sub}/allowed_hosts/${host}`;
  }

  // ---- steps ----
  /** The port at the node's address; linked to the subsystem (serving) unless `down`. */
  async setupPort(node: SimNodeEndpoint, down: boolean): Promise<void> {
    const port = this.port(node);
    await ensureDir(this.fs, port);
    const want: [string, string][] = [
      ['addr_trtype', 'tcp'],
      ['addr_adrfam', net.isIPv6(node.address) ? 'ipv6' : 'ipv4'],
      ['addr_traddr', node.address],
      ['addr_trsvcid', String(node.port)],
    ];
    const changed: [string, string][] = [];
    for (const [attr, value] of want)
      if ((await this.fs.read(`${port}/${attr}`)) !== value) changed.push([attr, value]);
    if (changed.length) {
      const users = (await this.fs.list(`${port}/subsystems`)).filter((s) => s !== this.nqn);
      if (users.length) throw new Error(`nvmet: ${port} serves ${users.join(', ')} at another address`);
      await removeEntry(this.fs, this.portLink(node), 'unlink');
      for (const [attr, value] of changed) await this.fs.write(`${port}/${attr}`, value);
    }
    if (!down) await this.linkPort(node);
  }

  linkPort(node: SimNodeEndpoint): Promise<void> {
    return ensureLink(this.fs, this.sub, this.portLink(node));
  }

  unlinkPort(node: SimNodeEndpoint): Promise<void> {
    return removeEntry(this.fs, this.portLink(node), 'unlink');
  }

  /** Unlinks the port, removes our ANA groups, and the port itself unless another subsystem uses it. */
  async dropPort(node: SimNodeEndpoint): Promise<void> {
    const port = this.port(node);
    await this.unlinkPort(node);
    for (const g of await this.fs.list(`${port}/ana_groups`)) {
      if (g !== '1') await removeEntry(this.fs, `${port}/ana_groups/${g}`, 'rmdir');
    }
    // A port another subsystem still uses is not ours to remove.
    if ((await this.fs.list(`${port}/subsystems`)).length === 0) await removeEntry(this.fs, port, 'rmdir');
  }

  ensureGroup(node: SimNodeEndpoint, group: number): Promise<void> {
    return ensureDir(this.fs, this.group(node, group));
  }

  writeAna(node: SimNodeEndpoint, group: number, state: string): Promise<void> {
    return writeIfChanged(this.fs, `${this.group(node, group)}/ana_state`, state);
  }

  removeGroup(node: SimNodeEndpoint, group: number): Promise<void> {
    return removeEntry(this.fs, this.group(node, group), 'rmdir');
  }

  /**
   * The enabled namespaces in the subsystem. A disabled one is a create that did not finish: it
   * serves nothing, so it goes.
   */
  async enabledNamespaces(): Promise<FoundNamespace[]> {
    const found: FoundNamespace[] = [];
    for (const name of await this.fs.list(`${this.sub}/namespaces`)) {
      const dir = this.ns(Number(name));
      if ((await this.fs.read(`${dir}/enable`)) !== '1') {
        await removeEntry(this.fs, dir, 'rmdir');
        continue;
      }
      found.push({
        nsid: Number(name),
        volumeUuid: (await this.fs.read(`${dir}/device_uuid`)).toLowerCase(),
        file: await this.fs.read(`${dir}/device_path`),
        anaGroup: Number(await this.fs.read(`${dir}/ana_grpid`)),
      });
    }
    return found;
  }

  /** True when the namespace exists and is enabled. */
  async isEnabled(nsid: number): Promise<boolean> {
    return (await this.fs.read(`${this.ns(nsid)}/enable`)) === '1';
  }

  /** Fills a disabled namespace's attributes and enables it. */
  async enableNamespace(
    nsid: number,
    ns: { file: string; volumeUuid: string; bufferedIo: boolean; anaGroup: number },
  ): Promise<void> {
    const dir = this.ns(nsid);
    await this.fs.write(`${dir}/device_path`, ns.file);
    await this.fs.write(`${dir}/device_uuid`, ns.volumeUuid);
    await this.fs.write(`${dir}/device_nguid`, ns.volumeUuid);
    await writeIfChanged(this.fs, `${dir}/buffered_io`, ns.bufferedIo ? '1' : '0');
    await this.fs.write(`${dir}/ana_grpid`, String(ns.anaGroup));
    await this.fs.write(`${dir}/enable`, '1');
  }

  /** Makes nvmet re-read the file's size and tell hosts. */
  async revalidate(nsid: number): Promise<void> {
    const dir = this.ns(nsid);
    if ((await this.fs.list(dir)).includes('revalidate_size')) {
      await this.fs.write(`${dir}/revalidate_size`, '1');
    } else {
      // Kernels without revalidate_size: a disable/enable cycle re-reads the size, but hosts
      // see the namespace vanish and come back.
      await this.fs.write(`${dir}/enable`, '0');
      await this.fs.write(`${dir}/enable`, '1');
    }
  }

  /** Disables and removes the namespace when it is there. */
  async removeNamespace(nsid: number): Promise<void> {
    if ((await this.fs.list(`${this.sub}/namespaces`)).includes(String(nsid))) {
      await this.fs.write(`${this.ns(nsid)}/enable`, '0');
      await removeEntry(this.fs, this.ns(nsid), 'rmdir');
    }
  }

  async allowHost(host: string): Promise<void> {
    await ensureDir(this.fs, `hosts/${host}`);
    await ensureLink(this.fs, `hosts/${host}`, this.hostLink(host));
  }

  allowedHosts(): Promise<string[]> {
    return this.fs.list(`${this.sub}/allowed_hosts`);
  }

  async revokeHost(host: string): Promise<void> {
    await removeEntry(this.fs, this.hostLink(host), 'unlink');
    try {
      await this.fs.rmdir(`hosts/${host}`);
    } catch (err) {
      // EBUSY: another subsystem still allows this host; ENOENT: already gone.
      if (errnoOf(err) !== 'EBUSY' && errnoOf(err) !== 'ENOENT') throw err;
    }
  }
}
