/**
 * The in-memory data plane: it exposes nothing to a real initiator, it only remembers what the
 * cluster model told it, so that tests can check that every change reached the data plane
 * (namespaces, ANA states, allowed hosts, node liveness) and in which order.
 */
import type { AnaState } from '../driver/model.ts';
import type { DataPlane, NamespaceSpec, SimNodeEndpoint } from './data-plane.ts';

export type DataPlaneCall =
  | { op: 'start'; subsystemNqn: string; nodes: SimNodeEndpoint[] }
  | { op: 'addNamespace'; ns: NamespaceSpec }
  | { op: 'resizeNamespace'; volumeUuid: string; sizeBytes: number }
  | { op: 'removeNamespace'; volumeUuid: string }
  | { op: 'setAna'; volumeUuid: string; ana: Record<string, AnaState> }
  | { op: 'setAllowedHosts'; hostNqns: string[] }
  | { op: 'setNodeUp'; nodeId: string; up: boolean }
  | { op: 'addNode'; node: SimNodeEndpoint }
  | { op: 'removeNode'; nodeId: string }
  | { op: 'setNodeAddress'; node: SimNodeEndpoint }
  | { op: 'stop' };

export interface MemoryDataPlaneOptions {
  /** A capacity limit like the nvmet plane's (tests of the cluster's refusal); default none. */
  maxNamespaces?: number;
}

export class MemoryDataPlane implements DataPlane {
  readonly kind = 'memory';
  readonly maxNamespaces?: number;
  /** Every call in the order received; arguments are copies, never shared with the caller. */
  readonly calls: DataPlaneCall[] = [];
  subsystemNqn: string | null = null;
  nodes: SimNodeEndpoint[] = [];
  readonly namespaces = new Map<string, NamespaceSpec>();
  allowedHosts: string[] = [];
  readonly nodeUp = new Map<string, boolean>();
  started = false;
  stopped = false;

  constructor(opts: MemoryDataPlaneOptions = {}) {
    this.maxNamespaces = opts.maxNamespaces;
  }

  async start(subsystemNqn: string, nodes: SimNodeEndpoint[]): Promise<void> {
    this.calls.push({ op: 'start', subsystemNqn, nodes: nodes.map((n) => ({ ...n })) });
    this.subsystemNqn = subsystemNqn;
    this.nodes = nodes.map((n) => ({ ...n }));
    for (const n of nodes) this.nodeUp.set(n.nodeId, true);
    this.started = true;
  }

  async addNamespace(ns: NamespaceSpec): Promise<void> {
    const copy = { ...ns, ana: { ...ns.ana } };
    this.calls.push({ op: 'addNamespace', ns: copy });
    this.namespaces.set(ns.volumeUuid, { ...copy, ana: { ...copy.ana } });
  }

  async resizeNamespace(volumeUuid: string, sizeBytes: number): Promise<void> {
    this.calls.push({ op: 'resizeNamespace', volumeUuid, sizeBytes });
    const ns = this.namespaces.get(volumeUuid);
    if (ns) ns.sizeBytes = sizeBytes;
  }

  async removeNamespace(volumeUuid: string): Promise<void> {
    this.calls.push({ op: 'removeNamespace', volumeUuid });
    this.namespaces.delete(volumeUuid);
  }

  async setAna(volumeUuid: string, ana: Record<string, AnaState>): Promise<void> {
    this.calls.push({ op: 'setAna', volumeUuid, ana: { ...ana } });
    const ns = this.namespaces.get(volumeUuid);
    if (ns) ns.ana = { ...ana };
  }

  async setAllowedHosts(hostNqns: string[]): Promise<void> {
    this.calls.push({ op: 'setAllowedHosts', hostNqns: [...hostNqns] });
    this.allowedHosts = [...hostNqns];
  }

  async setNodeUp(nodeId: string, up: boolean): Promise<void> {
    this.calls.push({ op: 'setNodeUp', nodeId, up });
    this.nodeUp.set(nodeId, up);
  }

  async addNode(node: SimNodeEndpoint): Promise<void> {
    this.calls.push({ op: 'addNode', node: { ...node } });
    if (!this.nodes.some((n) => n.nodeId === node.nodeId)) this.nodes.push({ ...node });
    this.nodeUp.set(node.nodeId, true);
  }

  async removeNode(nodeId: string): Promise<void> {
    this.calls.push({ op: 'removeNode', nodeId });
    this.nodes = this.nodes.filter((n) => n.nodeId !== nodeId);
    this.nodeUp.delete(nodeId);
  }

  async setNodeAddress(node: SimNodeEndpoint): Promise<void> {
    this.calls.push({ op: 'setNodeAddress', node: { ...node } });
    this.nodes = this.nodes.map((n) => (n.nodeId === node.nodeId ? { ...node } : n));
  }

  async stop(): Promise<void> {
    this.calls.push({ op: 'stop' });
    this.stopped = true;
  }

  /** The calls of one kind, for assertions. */
  callsOf<K extends DataPlaneCall['op']>(op: K): Extract<DataPlaneCall, { op: K }>[] {
    return this.calls.filter((c): c is Extract<DataPlaneCall, { op: K }> => c.op === op);
  }
}
