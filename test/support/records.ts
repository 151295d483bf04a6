import { randomUUID } from 'node:crypto';
import { buildConnectionInfo } from '../../src/driver/connection-info.ts';
import type { ConnectedBy, Volume, VolumePath } from '../../src/driver/model.ts';
import type { Store } from '../../src/driver/ports.ts';

/**
 * An available 1 GB volume recorded straight in the store (no backend call), as the tests and
 * benchmarks that need rows rather than a lifecycle set one up; with `backendUuid`, linked to
 * that backend volume.
 */
export async function recordVolume(
  store: Store,
  o: { backendUuid?: string; multiattach?: boolean; replicas?: number } = {},
): Promise<Volume> {
  const id = randomUUID();
  const v = await store.insertVolume({
    id,
    name: `volume-${id}`,
    sizeGb: 1,
    replicas: o.replicas ?? 3,
    multiattach: o.multiattach ?? true,
    status: 'available',
  });
  return o.backendUuid ? await store.updateVolume(id, { backendUuid: o.backendUuid }) : v;
}

/**
 * A native-multipath attachment of `hostNqn` to the volume, recorded attached with the connection
 * info `buildConnectionInfo` gives for `paths` (no backend call, no agent).
 */
export async function recordAttached(
  store: Store,
  o: {
    volumeId: string;
    backendUuid: string;
    subsystemNqn: string;
    paths: VolumePath[];
    hostNqn: string;
    hostName: string;
    connectedBy: ConnectedBy;
  },
): Promise<void> {
  const connector = { host: o.hostName, nqn: o.hostNqn, multipath: true, nvme_native_multipath: true };
  const a = await store.insertAttachment({
    volumeId: o.volumeId,
    hostNqn: o.hostNqn,
    hostName: o.hostName,
    instanceUuid: null,
    connector,
    multipathMode: 'native',
    connectedBy: o.connectedBy,
  });
  const connectionInfo = buildConnectionInfo({
    volumeUuid: o.backendUuid,
    subsystemNqn: o.subsystemNqn,
    paths: o.paths,
    hostNqn: o.hostNqn,
    mode: 'native',
    accessMode: 'rw',
  });
  await store.updateAttachment(a.id, { status: 'attached', connectionInfo });
}
