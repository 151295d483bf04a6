import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import { type Attachment, type AttachmentStatus, type Connector, LIVE_STATUSES } from './model.ts';
import type { Store } from './ports.ts';

export interface TerminateConnectionRequest {
  volumeId: string;
  /** null = every host (only with `force`), as Cinder's force-detach. */
  connector: Connector | null;
  force?: boolean;
  /** Narrow to one attachment of the host. */
  attachmentId?: string;
  /** Narrow to the host's attachment for this instance. */
  instanceUuid?: string | null;
}

export interface TerminateConnectionResult {
  /** This call removed host access from the backend ACL. */
  revoked: boolean;
  /** Other live attachments of the volume remain on the host, so its access was kept. */
  shared: boolean;
  /** Attachments this call moved to `detached`. */
  detached: string[];
  /** Hosts whose access this call removed. */
  revokedHosts: string[];
}

/** Attachments that still hold, or may still hold, backend access. */
const UNFINISHED: readonly AttachmentStatus[] = ['attaching', 'attached', 'detaching'];

/**
 * Cinder's `terminate_connection`. The host leaves the backend ACL only when no other live
 * attachment of the volume remains on it (the LightOS Cinder driver revokes on the first
 * detach of two). Targets are recorded as `detaching` before the backend is touched, so a
 * failed revoke leaves records that a retry picks up again. Repeating a terminate is harmless.
 */
export async function terminateConnection(deps: DriverDeps, req: TerminateConnectionRequest): Promise<TerminateConnectionResult> {
  if (req.connector === null && !req.force) {
    throw new DriverError('invalid_request', 'connector: required unless force is true (connector null with force revokes every host)', {
      details: { field: 'connector' },
    });
  }
  return deps.locks.withVolumeLock(req.volumeId, async (store) => {
    const volume = await store.getVolume(req.volumeId);
    if (!volume) throw new DriverError('volume_not_found', `volume ${req.volumeId} does not exist`);
    const unfinished = await store.attachmentsOfVolume(volume.id, UNFINISHED);

    if (req.connector === null) {
      await markAll(store, unfinished, 'detaching', true);
      const removed = volume.backendUuid ? (await deps.backend.revokeAllAccess(volume.backendUuid)).removed : [];
      await markAll(store, unfinished, 'detached');
      deps.logger.info({ volume: volume.id, hosts: removed }, 'all connections terminated');
      return { revoked: removed.length > 0, shared: false, detached: unfinished.map((a) => a.id), revokedHosts: removed };
    }

    const hostNqn = req.connector.nqn;
    if (req.attachmentId) await checkAttachmentOf(store, req.attachmentId, volume.id, hostNqn);
    const ofHost = unfinished.filter((a) => a.hostNqn === hostNqn);
    const targets = ofHost.filter(
      (a) =>
        (req.attachmentId === undefined || a.id === req.attachmentId) &&
        (req.instanceUuid === undefined || a.instanceUuid === (req.instanceUuid ?? null)),
    );
    const remaining = ofHost.filter((a) => !targets.includes(a) && LIVE_STATUSES.includes(a.status));

    await markAll(store, targets, 'detaching', req.force ?? false);
    let revoked = false;
    if (remaining.length === 0 && volume.backendUuid) {
      // Also when there are no targets: a repeated terminate re-checks that access is gone.
      revoked = (await deps.backend.revokeAccess(volume.backendUuid, hostNqn)).changed;
    }
    await markAll(store, targets, 'detached');
    deps.logger.info({ volume: volume.id, host: req.connector.host, revoked, shared: remaining.length > 0 }, 'connection terminated');
    return { revoked, shared: remaining.length > 0, detached: targets.map((a) => a.id), revokedHosts: revoked ? [hostNqn] : [] };
  });
}

async function checkAttachmentOf(store: Store, id: string, volumeId: string, hostNqn: string): Promise<void> {
  const a = await store.getAttachment(id);
  if (!a || a.volumeId !== volumeId) throw new DriverError('attachment_not_found', `attachment ${id} of volume ${volumeId} does not exist`);
  if (a.hostNqn !== hostNqn) {
    throw new DriverError('invalid_request', `attachment_id: attachment ${id} belongs to host ${a.hostName}, not to connector.nqn ${hostNqn}`, {
      details: { field: 'attachment_id' },
    });
  }
}

/** `force` is recorded so that the host's agent tears the device down even while it is in use. */
async function markAll(store: Store, list: Attachment[], status: AttachmentStatus, force = false): Promise<void> {
  for (const a of list) {
    if (a.status === status && (!force || a.detachForce)) continue;
    await store.updateAttachment(a.id, {
      status,
      ...(status === 'detached' ? { detachedAt: new Date() } : {}),
      ...(force ? { detachForce: true } : {}),
    });
  }
}
