import { reconcileWithBackend } from './backend-truth.ts';
import { buildConnectionInfo, chooseConnectedBy, chooseMultipathMode } from './connection-info.ts';
import type { DriverDeps } from './deps.ts';
import { DriverError } from './errors.ts';
import { requireAvailable, requireVolumeWith } from './guards.ts';
import { type Attachment, type ConnectionInfo, type Connector, LIVE_STATUSES, type MultipathMode } from './model.ts';
import { applyPaths, sameJson } from './refresh-portals.ts';
import { underVolumeLock, type VolumeWork } from './unit-of-work.ts';

export interface InitializeConnectionRequest {
  volumeId: string;
  connector: Connector;
  /** Tells apart several attachments of one volume on one host (multiattach, Cinder's instance). */
  instanceUuid?: string | null;
  accessMode?: 'rw' | 'ro';
}

export interface InitializeConnectionResult {
  attachment: Attachment;
  connectionInfo: ConnectionInfo;
  /** True when this call created the attachment; false when it returned an existing one. */
  created: boolean;
}

/**
 * Cinder's `initialize_connection`: grant the host access on the backend and return the
 * connection info, idempotently. Repeating the call for the same (volume, host, instance)
 * returns the same attachment (re-granting, which is a no-op on the backend, and refreshing
 * the portals, since the optimized node may have moved).
 *
 * Ordering for crash safety: the attachment is recorded as `attaching` *before* the grant, so
 * there is never an ACL entry without a record (the backend's reads run beside the insert; its
 * ACL write waits for the insert's commit); it becomes `attached` only after the grant is
 * confirmed, so there is never an active record without an ACL entry. When the grant fails,
 * a new host's entry is revoked again; when that fails too, the `attaching` row stays, and the
 * next initialize (or terminate) for the host converges from it.
 */
export async function initializeConnection(
  deps: DriverDeps,
  req: InitializeConnectionRequest,
): Promise<InitializeConnectionResult> {
  // Decided before any lock or backend call: a refused connector leaves nothing behind.
  const mode = chooseMultipathMode(req.connector);
  return underVolumeLock(deps, req.volumeId, (uow) => initializeLocked(uow, req, mode));
}

async function initializeLocked(
  uow: VolumeWork,
  req: InitializeConnectionRequest,
  mode: MultipathMode,
): Promise<InitializeConnectionResult> {
  const { connector } = req;
  const instanceUuid = req.instanceUuid ?? null;
  const { store } = uow;
  const found = await requireVolumeWith(store, req.volumeId, LIVE_STATUSES);
  let volume = found.volume;
  const live = found.attachments;
  // A record left `error` by a failed operation (an extend, a delete) whose volume the backend
  // still shows healthy is available: a transient fault must not block attaching.
  if (volume.status === 'error') volume = await reconcileWithBackend(uow, volume).catch(() => volume);
  const { backendUuid } = requireAvailable('volume', volume);
  let attachment = live.find((a) => a.hostNqn === connector.nqn && a.instanceUuid === instanceUuid);
  const created = !attachment;
  if (!attachment) {
    const other = live.find((a) => !mayShareWithoutMultiattach(a, connector.nqn, instanceUuid));
    if (other && !volume.multiattach) {
      throw new DriverError(
        'volume_in_use',
        `volume ${volume.id} is not multiattach and is already attached to ${other.hostName} (attachment ${other.id})`,
        {
          details: { attachment_id: other.id, host: other.hostName },
        },
      );
    }
  }
  // The backend's reads run beside the insert; only its ACL write waits for the record.
  const recording = attachment
    ? undefined
    : store.insertAttachment({
        volumeId: volume.id,
        hostNqn: connector.nqn,
        hostName: connector.host,
        instanceUuid,
        connector,
        multipathMode: mode,
        connectedBy: chooseConnectedBy(connector),
      });
  // Awaited below on every path; this only keeps a rejection from counting as unhandled meanwhile.
  recording?.catch(() => undefined);

  try {
    const granting = uow.backend.attachAccess(backendUuid, connector.nqn, recording);
    const naming = uow.clusterInfo();
    // Both settle before anything else happens: a failure of one must not compensate while
    // the other could still write the grant.
    await Promise.allSettled([granting, naming]);
    const [{ volume: bv, paths }, cluster] = [await granting, await naming];
    attachment ??= await recording!;
    const connectionInfo = buildConnectionInfo({
      volumeUuid: bv.uuid,
      subsystemNqn: cluster.subsystemNqn,
      nsid: bv.nsid,
      nguid: bv.nguid,
      paths,
      hostNqn: connector.nqn,
      mode,
      accessMode: req.accessMode ?? 'rw',
    });
    // The backend's size is the truth (an extend may have landed without its answer).
    await reconcileWithBackend(uow, volume, bv);
    // What the host connects (a host-connected attachment's os-brick) is this answer's portals:
    // its agent adds only the portals the refresh brings later, never one the host connects.
    const hostPortals = attachment.connectedBy === 'host' ? (connectionInfo.data.portals ?? null) : null;
    // A repeated call that changes nothing writes nothing (a database round trip fewer; the
    // row would only have its updated_at moved, and no trigger fires for it).
    const unchanged =
      attachment.status === 'attached' &&
      attachment.multipathMode === mode &&
      sameJson(attachment.connectionInfo, connectionInfo) &&
      sameJson(attachment.hostPortals, hostPortals) &&
      sameJson(attachment.connector, connector);
    const saved = unchanged
      ? attachment
      : await store.updateAttachment(attachment.id, {
          status: 'attached',
          connectionInfo,
          connector,
          multipathMode: mode,
          hostPortals,
        });
    // The paths just read are the backend's truth for every host of this volume: the other
    // attachments follow at once rather than at the next periodic refresh.
    const others = live.filter((a) => a.id !== saved.id && a.status === 'attached');
    await applyPaths(uow, others, cluster.subsystemNqn, paths);
    uow.logger.info(
      { volume: volume.id, attachment: saved.id, host: connector.host, mode, created },
      'connection initialized',
    );
    return { attachment: saved, connectionInfo, created };
  } catch (e) {
    // A record whose insert failed left nothing to undo (the grant waited for it and wrote nothing).
    const inserted = await recording?.catch((insertError: unknown) => {
      if (insertError !== e)
        uow.logger.warn(
          { volume: volume.id, host: connector.host, err: (insertError as Error).message },
          'the attaching record could not be written either',
        );
      return null;
    });
    if (inserted) await compensate(uow, inserted, backendUuid, live);
    throw e;
  }
}

/**
 * Whether a live attachment may stay beside a new one of a volume without multiattach: only the
 * same instance on another host, which is a live migration (Nova attaches the volume on the
 * destination before it detaches it from the source). Cinder itself allows exactly that reservation
 * for a non-multiattach volume (cinder/volume/api.py `_attachment_reserve`, Launchpad bug 1694530).
 */
function mayShareWithoutMultiattach(a: Attachment, hostNqn: string, instanceUuid: string | null): boolean {
  if (a.hostNqn === hostNqn && a.instanceUuid === instanceUuid) return true;
  return instanceUuid !== null && a.instanceUuid === instanceUuid;
}

/** Undo a new attachment's grant after a failure, or leave a record a retry converges from. */
async function compensate(
  uow: VolumeWork,
  attachment: Attachment,
  backendUuid: string,
  live: Attachment[],
): Promise<void> {
  const hostStillUses = live.some((a) => a.hostNqn === attachment.hostNqn);
  try {
    if (!hostStillUses) await uow.backend.revokeAccess(backendUuid, attachment.hostNqn);
    await uow.store.updateAttachment(attachment.id, { status: 'error' });
  } catch (e) {
    uow.logger.warn(
      { attachment: attachment.id, err: (e as Error).message },
      'could not undo a failed grant; the attaching record stays so that a retry converges',
    );
  }
}
