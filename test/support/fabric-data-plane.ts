import type { AnaState } from '../../src/driver/model.ts';
import type { FakeHost } from '../../src/agent/host/testing/fake-host.ts';
import { portalKey } from '../../src/agent/host/testing/fabric.ts';
import type { DataPlane, NamespaceSpec, SimNodeEndpoint } from '../../src/sim/data-plane.ts';

/**
 * A simulator data plane whose target is the agent's fake host fabric: what the simulator
 * decides (namespaces, per-node ANA states, ACLs, nodes down) is exactly what the fake kernel
 * of the host sees. It joins service, simulator and agent into one test without a real kernel;
 * the real-kernel suite does the same with the nvmet plane.
 */
export class FabricDataPlane implements DataPlane {
  readonly kind = 'fake-fabric';
  private nqn = '';
  private nodes: SimNodeEndpoint[] = [];
  private nsids = new Map<string, number>();

  constructor(private readonly host: FakeHost) {}

  private key(nodeId: string): { key: string; node: SimNodeEndpoint } {
    const node = this.nodes.find((n) => n.nodeId === nodeId);
    if (!node) throw new Error(`no node ${nodeId}`);
    return { key: portalKey('tcp', node.address, node.port), node };
  }

  async start(subsystemNqn: string, nodes: SimNodeEndpoint[]): Promise<void> {
    this.nqn = subsystemNqn;
    this.nodes = nodes;
    this.host.fabric.addSubsystem(
      subsystemNqn,
      nodes.map((n) => ({ address: n.address, port: n.port })),
    );
  }

  async addNamespace(ns: NamespaceSpec): Promise<void> {
    this.nsids.set(ns.volumeUuid, ns.nsid);
    this.host.fabric.addNamespace(this.nqn, { nsid: ns.nsid, uuid: ns.volumeUuid, sizeBytes: ns.sizeBytes });
    await this.setAna(ns.volumeUuid, ns.ana);
  }

  private ns(volumeUuid: string) {
    const nsid = this.nsids.get(volumeUuid);
    return nsid === undefined ? undefined : this.host.fabric.subsystem(this.nqn).namespaces.get(nsid);
  }

  /** The simulator's trusted-host secrets, enforced by the fake target as nvmet's `dhchap_key` would be. */
  async setHostSecrets(hostNqn: string, secrets: { hostSecret: string; ctrlSecret: string }): Promise<'written'> {
    this.host.fabric.hostKeys.set(hostNqn, secrets.hostSecret);
    return 'written';
  }

  async resizeNamespace(volumeUuid: string, sizeBytes: number): Promise<void> {
    const ns = this.ns(volumeUuid);
    if (ns) ns.sizeBytes = sizeBytes;
  }

  async removeNamespace(volumeUuid: string): Promise<void> {
    const nsid = this.nsids.get(volumeUuid);
    if (nsid !== undefined) this.host.fabric.subsystem(this.nqn).namespaces.delete(nsid);
    this.nsids.delete(volumeUuid);
  }

  async setAna(volumeUuid: string, ana: Record<string, AnaState>): Promise<void> {
    const ns = this.ns(volumeUuid);
    if (!ns) return;
    for (const [nodeId, state] of Object.entries(ana)) ns.ana.set(this.key(nodeId).key, state);
    // The kernel reports ANA changes through sysfs as soon as the ANA log is read again.
    this.host.kernel.render();
  }

  async setAllowedHosts(hostNqns: string[]): Promise<void> {
    const s = this.host.fabric.subsystem(this.nqn);
    s.allowedHosts = new Set(hostNqns);
  }

  async setNodeUp(nodeId: string, up: boolean): Promise<void> {
    const { node } = this.key(nodeId);
    this.host.setPortalUp(node.address, up, node.port);
  }

  async addNode(node: SimNodeEndpoint): Promise<void> {
    if (this.nodes.some((n) => n.nodeId === node.nodeId)) return;
    this.nodes = [...this.nodes, { ...node }];
    const key = this.openPortal(node);
    // A new node serves nothing until a replica moves onto it.
    for (const ns of this.host.fabric.subsystem(this.nqn).namespaces.values()) ns.ana.set(key, 'inaccessible');
    this.host.kernel.render();
  }

  async removeNode(nodeId: string): Promise<void> {
    const node = this.nodes.find((n) => n.nodeId === nodeId);
    if (!node) return;
    this.closePortal(node);
    this.nodes = this.nodes.filter((n) => n !== node);
  }

  /** Like a target port readdressed: the old portal stops answering, the new one serves the same states. */
  async setNodeAddress(node: SimNodeEndpoint): Promise<void> {
    const old = this.nodes.find((n) => n.nodeId === node.nodeId);
    if (!old) throw new Error(`no node ${node.nodeId}`);
    const oldKey = portalKey('tcp', old.address, old.port);
    this.nodes = this.nodes.map((n) => (n.nodeId === node.nodeId ? { ...node } : n));
    const key = this.openPortal(node);
    for (const ns of this.host.fabric.subsystem(this.nqn).namespaces.values())
      ns.ana.set(key, ns.ana.get(oldKey) ?? 'optimized');
    this.closePortal(old);
  }

  private openPortal(node: SimNodeEndpoint): string {
    const key = portalKey('tcp', node.address, node.port);
    const f = this.host.fabric;
    const existing = f.portals.get(key);
    if (existing) existing.up = true;
    else f.portals.set(key, { key, address: node.address, port: node.port, transport: 'tcp', up: true });
    f.subsystem(this.nqn).portals.add(key);
    return key;
  }

  private closePortal(node: SimNodeEndpoint): void {
    const key = portalKey('tcp', node.address, node.port);
    this.host.setPortalUp(node.address, false, node.port);
    this.host.fabric.subsystem(this.nqn).portals.delete(key);
  }

  async stop(): Promise<void> {}
}
