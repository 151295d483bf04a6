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

  async stop(): Promise<void> {}
}
