/**
 * Model → LightOS API v2 JSON. Shapes follow what LightOS answers (its REST API is a gRPC
 * gateway): 64-bit byte counts are JSON strings (`"size": "10737418240"`), booleans the gateway
 * carries as strings (`"compression": "false"`), an empty ACL is the sentinel `["ALLOW_NONE"]`,
 * and unset strings are "". One documented extension: `replicaPlacement`.
 */
import type { SimCluster } from './cluster.ts';
import type { SimNode, SimSnapshot, SimVolume } from './model.ts';
import { protectionState } from './placement.ts';
import { ALLOW_NONE } from './validate.ts';

const values = (list: string[]) => ({ values: list.length > 0 ? [...list] : [ALLOW_NONE] });

export function formatEndpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function presentVolume(cluster: SimCluster, v: SimVolume) {
  const ana = cluster.anaOf(v);
  return {
    UUID: v.uuid,
    name: v.name,
    projectName: v.project,
    size: String(v.sizeBytes),
    replicaCount: v.replicaCount,
    compression: String(v.compression),
    state: v.state,
    protectionState: protectionState(cluster.nodes, v),
    acl: values(v.acl),
    IPAcl: values(v.ipAcl),
    ETag: v.etag,
    nsid: v.nsid,
    sourceSnapshotUUID: v.sourceSnapshotUuid,
    sourceSnapshotName: v.sourceSnapshotName,
    qosPolicyUUID: v.qosPolicyUuid,
    creationTime: v.createdAt.toISOString(),
    /**
     * Simulator extension (real LightOS has no such field): one entry per node holding a
     * replica, with that node's ANA state for this volume, in placement order.
     */
    replicaPlacement: v.replicas.map((nodeUUID) => ({ nodeUUID, anaState: ana[nodeUUID] })),
  };
}

export function presentSnapshot(s: SimSnapshot) {
  return {
    UUID: s.uuid,
    name: s.name,
    projectName: s.project,
    sourceVolumeUUID: s.sourceVolumeUuid,
    sourceVolumeName: s.sourceVolumeName,
    size: String(s.sizeBytes),
    state: s.state,
    ETag: s.etag,
    creationTime: s.createdAt.toISOString(),
  };
}

export function presentNode(n: SimNode) {
  return {
    UUID: n.uuid,
    name: n.name,
    nvmeEndpoint: formatEndpoint(n.address, n.port),
    state: n.up ? 'Active' : 'Inactive',
  };
}

/**
 * `GET /api/v2/cluster`. The statistics use the LightOS field names the Proxmox plugin reads:
 * `estimatedLogicalStorage` (total bytes), `estimatedFreeLogicalStorage` (free bytes), plus
 * `logicalUsedStorage`, which in the simulator is the provisioned sum of volume sizes (the
 * simulator is thick: it has no written-data accounting), and the two physical figures Cinder's
 * LightOS driver names for its capacity report (`effectivePhysicalStorage`,
 * `freePhysicalStorage`, in get_volume_stats), which here equal the logical ones (no
 * compression, no replication overhead).
 */
export function presentCluster(cluster: SimCluster) {
  const used = cluster.usedBytes();
  return {
    UUID: cluster.uuid,
    subsystemNQN: cluster.subsystemNqn,
    currentMaxReplicas: cluster.maxReplicas,
    statistics: {
      estimatedLogicalStorage: String(cluster.capacityBytes),
      estimatedFreeLogicalStorage: String(Math.max(0, cluster.capacityBytes - used)),
      logicalUsedStorage: String(used),
      effectivePhysicalStorage: String(cluster.capacityBytes),
      freePhysicalStorage: String(Math.max(0, cluster.capacityBytes - used)),
    },
  };
}
