/**
 * Which portals reach a volume, optimized first.
 *
 * With the simulator's `replicaPlacement` extension the answer is exact: every replica node,
 * optimized first, then non-optimized, then the others. A replica whose node is down (or whose
 * state is inaccessible) is still listed, last and as `inaccessible`: a host attached now must
 * connect it once it is back, or it would stay with fewer paths for good. A real LightOS does
 * not report placement or per-node ANA state (its hosts learn ANA from the target itself, and the
 * Cinder driver hands out every node); then every node is a path, Active ones as `unknown` in
 * the order the API listed them, the others last as `inaccessible`.
 */
import { orderPaths } from '../../driver/connection-info.ts';
import type { AnaState, VolumePath } from '../../driver/model.ts';
import type { PlacementEntry, WireNode } from './parse.ts';

type Reachable = WireNode & { endpoint: { address: string; port: number } };

/** The volume's paths from the node list (and the simulator's placement), ranked by `orderPaths`. */
export function volumePathsOf(
  nodes: WireNode[],
  placement: PlacementEntry[] | undefined,
  onBadEndpoint: (node: WireNode) => void = () => {},
): VolumePath[] {
  const withEndpoint = (n: WireNode | undefined): n is Reachable => {
    if (!n) return false;
    if (!n.endpoint) onBadEndpoint(n);
    return Boolean(n.endpoint);
  };
  const path = (n: Reachable, anaState: AnaState): VolumePath => ({
    nodeId: n.uuid,
    portal: { address: n.endpoint.address, port: n.endpoint.port, transport: 'tcp' },
    anaState: n.active ? anaState : 'inaccessible',
  });

  const paths: VolumePath[] = [];
  if (!placement) {
    for (const n of nodes) if (withEndpoint(n)) paths.push(path(n, 'unknown'));
  } else {
    const byId = new Map(nodes.map((n) => [n.uuid, n]));
    for (const p of placement) {
      const node = byId.get(p.nodeUuid);
      if (withEndpoint(node)) paths.push(path(node, p.anaState as AnaState));
    }
  }
  // One ranking for the whole driver (stable: equal states keep the API's or placement's order).
  return orderPaths(paths);
}
