import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import { attachmentNotFound, volumeWithUnlessDeleted } from './guards.ts';
import { type Attachment, type AttachmentStatus, type Connector, LIVE_STATUSES, type Volume } from './model.ts';
import type { Store } from './ports.ts';
import { underVolumeLock, type VolumeWork } from './unit-of-work.ts';

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
  /**
   * Attachments left `detaching`: the host's agent releases the device first, and the host's
   * access is revoked when it reports the device gone.
   */
  pending: string[];
}

/** Attachments that still hold, or may still hold, backend access. */
const UNFINISHED: readonly AttachmentStatus[] = ['attaching', 'attached', 'detaching'];

const NOTHING: TerminateConnectionResult = {
  revoked: false,
  shared: false,
  detached: [],
  revokedHosts: [],
  pending: [],
};

/**
 * Cinder's `terminate_connection`. The host leaves the backend ACL only when no other live
 * attachment of the volume remains on it (the LightOS Cinder driver revokes on the first detach
 * of two). Targets are recorded as `detaching` before the backend is touched, so a failed revoke
 * leaves records that a retry picks up again. Repeating a terminate is harmless, also after the
 * volume was deleted.
 *
 * On a host whose Portalis agent is registered, a normal terminate does not revoke at once: the
 * agent first checks that the device is not in use, flushes and disconnects it, and the access
 * goes when it reports `disconnected` (`finishDetach`). Revoking first would pull a mounted
 * device from under its user. `force` revokes at once and tells the agent to tear down even a
 * device in use. A host-connected attachment (os-brick's, with or without an agent beside it)
 * has been disconnected by its host before Cinder calls this: its access goes at once.
 */
export async function terminateConnection(
  deps: DriverDeps,
  req: TerminateConnectionRequest,
): Promise<TerminateConnectionResult> {
  if (req.connector === null && !req.force) {
    throw new DriverError(
      'invalid_request',
      'connector: required unless force is true (connector null with force revokes every host)',
      {
        details: { field: 'connector' },
      },
    );
  }
  return underVolumeLock(deps, req.volumeId, (uow) => terminateLocked(uow, req));
}

async function terminateLocked(uow: VolumeWork, req: TerminateConnectionRequest): Promise<TerminateConnectionResult> {
  const { store } = uow;
  // After the volume's delete, a repeated terminate has nothing left to do.
  const found = await volumeWithUnlessDeleted(store, req.volumeId, UNFINISHED);
  if (!found) return NOTHING;
  const { volume, attachments: unfinished } = found;

  if (req.connector === null) {
    await markAll(store, unfinished, 'detaching', true);
    const removed = volume.backendUuid ? (await uow.backend.revokeAllAccess(volume.backendUuid)).removed : [];
    await markAll(store, unfinished, 'detached');
    uow.logger.info({ volume: volume.id, hosts: removed }, 'all connections terminated');
    return { ...NOTHING, revoked: removed.length > 0, detached: unfinished.map((a) => a.id), revokedHosts: removed };
  }

  const hostNqn = req.connector.nqn;
  if (req.attachmentId) await checkAttachmentOf(store, req.attachmentId, volume.id, hostNqn);
  const ofHost = unfinished.filter((a) => a.hostNqn === hostNqn);
  const narrowed = req.attachmentId !== undefined || req.instanceUuid !== undefined;
  const liveOfHost = ofHost.filter((a) => LIVE_STATUSES.includes(a.status));
  // Only attachments whose connection info was handed out can be meant; one whose initialize
  // failed before answering is no second choice (it is detached along with the one meant).
  const handedOut = liveOfHost.filter((a) => a.connectionInfo !== null);
  if (!narrowed && !req.force && handedOut.length > 1) {
    throw new DriverError(
      'ambiguous_attachment',
      `host ${req.connector.host} has ${handedOut.length} attachments of volume ${volume.id}: ` +
        'say which with instance_uuid or attachment_id (or force to detach them all)',
      {
        details: {
          fields: ['instance_uuid', 'attachment_id'],
          attachments: handedOut.map((a) => ({ id: a.id, instance_uuid: a.instanceUuid })),
        },
      },
    );
  }
  const targets = ofHost.filter(
    (a) =>
      (req.attachmentId === undefined || a.id === req.attachmentId) &&
      (req.instanceUuid === undefined || a.instanceUuid === (req.instanceUuid ?? null)),
  );
  const remaining = liveOfHost.filter((a) => !targets.includes(a));

  await markAll(store, targets, 'detaching', req.force ?? false);
  // Targets whose device the host's agent has not yet released. One without connection info
  // never reached the host (its initialize failed before answering, and the undo failed too):
  // no device of it can exist and the agent never lists it, so waiting for the agent would
  // never end. A host-connected one is released by the host itself (Nova calls os-brick's
  // disconnect_volume before Cinder's attachment_delete), never by the agent. Both are
  // finished here, and the access goes at once when nothing else holds it.
  const held = targets.filter(
    (a) => a.connectedBy === 'agent' && a.report?.state !== 'disconnected' && a.connectionInfo !== null,
  );
  if (!req.force && held.length > 0 && (await agentManaged(store, hostNqn))) {
    const unreachable = targets.filter((a) => !held.includes(a));
    await markAll(store, unreachable, 'detached');
    uow.logger.info(
      {
        volume: volume.id,
        host: req.connector.host,
        attachments: held.map((a) => a.id),
        detached: unreachable.map((a) => a.id),
      },
      'detach handed to the host agent',
    );
    return {
      ...NOTHING,
      shared: remaining.length > 0,
      pending: held.map((a) => a.id),
      detached: unreachable.map((a) => a.id),
    };
  }
  return finish(uow, volume, hostNqn, targets, remaining);
}

/**
 * The host's agent reported an attachment's device gone: finish its detach (revoke the host's
 * access when nothing else of the volume is live on it). Not an error when the attachment is
 * not detaching; throws the backend's error when the revoke fails, so that the agent reports
 * again and the detach converges.
 */
export async function finishDetach(deps: DriverDeps, attachmentId: string): Promise<void> {
  const first = await deps.store.getAttachment(attachmentId);
  if (first?.status !== 'detaching') return;
  await underVolumeLock(deps, first.volumeId, (uow) => finishDetachLocked(uow, attachmentId));
}

async function finishDetachLocked(uow: VolumeWork, attachmentId: string): Promise<void> {
  const { store } = uow;
  const a = await store.getAttachment(attachmentId);
  if (a?.status !== 'detaching') return;
  const volume = await store.getVolume(a.volumeId, { includeDeleted: true });
  if (!volume) return;
  const remaining = (await store.attachmentsOfVolume(volume.id, LIVE_STATUSES)).filter((x) => x.hostNqn === a.hostNqn);
  await finish(uow, volume, a.hostNqn, [a], remaining);
}

async function finish(
  { store, backend, logger }: VolumeWork,
  volume: Volume,
  hostNqn: string,
  targets: Attachment[],
  remaining: Attachment[],
): Promise<TerminateConnectionResult> {
  let revoked = false;
  if (remaining.length === 0 && volume.backendUuid) {
    // Also when there are no targets: a repeated terminate re-checks that access is gone.
    revoked = (await backend.revokeAccess(volume.backendUuid, hostNqn)).changed;
  }
  await markAll(store, targets, 'detached');
  logger.info({ volume: volume.id, host: hostNqn, revoked, shared: remaining.length > 0 }, 'connection terminated');
  return {
    ...NOTHING,
    revoked,
    shared: remaining.length > 0,
    detached: targets.map((a) => a.id),
    revokedHosts: revoked ? [hostNqn] : [],
  };
}

/**
 * A host whose Portalis agent has registered tears its devices down itself before access goes.
 * Read through the lock's own store: the lock holder must never wait for a pooled connection.
 */
async function agentManaged(store: Store, hostNqn: string): Promise<boolean> {
  const host = await store.getHost(hostNqn);
  return host?.registeredAt != null;
}

async function checkAttachmentOf(store: Store, id: string, volumeId: string, hostNqn: string): Promise<void> {
  const a = await store.getAttachment(id);
  if (!a || a.volumeId !== volumeId) throw attachmentNotFound(id, volumeId);
  if (a.hostNqn !== hostNqn) {
    throw new DriverError(
      'invalid_request',
      `attachment_id: attachment ${id} belongs to host ${a.hostName}, not to connector.nqn ${hostNqn}`,
      {
        details: { field: 'attachment_id' },
      },
    );
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
