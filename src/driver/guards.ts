/**
 * The preambles the use cases share, and the messages of their 404s and 409s, each written once.
 * `field` names the request field that referred to the record (`source.volume_id`): the message
 * starts with it and the error's details carry it, as the API's validation errors do.
 */
import { DriverError, type ErrorCode } from './errors.ts';
import type { Attachment, AttachmentStatus, Snapshot, Volume } from './model.ts';
import type { Store } from './ports.ts';

function fieldError(code: ErrorCode, text: string, field: string | undefined, details: Record<string, unknown> = {}) {
  const all = field === undefined ? details : { field, ...details };
  return new DriverError(code, field === undefined ? text : `${field}: ${text}`, {
    ...(Object.keys(all).length > 0 ? { details: all } : {}),
  });
}

const missing = (code: ErrorCode, what: string, field?: string) => fieldError(code, `${what} does not exist`, field);

export const volumeNotFound = (id: string, field?: string) => missing('volume_not_found', `volume ${id}`, field);
export const snapshotNotFound = (id: string, field?: string) => missing('snapshot_not_found', `snapshot ${id}`, field);
export const hostNotFound = (nqn: string) => new DriverError('host_not_found', `host ${nqn} is not known`);
/** `volumeId`: the attachment was asked for as one of this volume's. */
export const attachmentNotFound = (id: string, volumeId?: string) =>
  missing(
    'attachment_not_found',
    volumeId === undefined ? `attachment ${id}` : `attachment ${id} of volume ${volumeId}`,
  );

const NOT_READY = { volume: 'volume_not_ready', snapshot: 'snapshot_not_ready' } as const;

/**
 * The record, when it is `available` and on the backend; otherwise 409 `volume_not_ready` (or
 * `snapshot_not_ready`) naming its status.
 */
export function requireAvailable<R extends { id: string; status: string; backendUuid: string | null }>(
  kind: keyof typeof NOT_READY,
  record: R,
  field?: string,
): R & { backendUuid: string } {
  const { id, status, backendUuid } = record;
  if (status !== 'available' || !backendUuid)
    throw fieldError(NOT_READY[kind], `${kind} ${id} is ${status}, not available`, field, { status });
  return { ...record, backendUuid };
}

/** The live volume; 404 `volume_not_found` when there is none (or it was deleted). */
export async function requireVolume(store: Store, id: string, field?: string): Promise<Volume> {
  const v = await store.getVolume(id);
  if (!v) throw volumeNotFound(id, field);
  return v;
}

/** The snapshot; 404 `snapshot_not_found` when there is none. */
export async function requireSnapshot(store: Store, id: string, field?: string): Promise<Snapshot> {
  const s = await store.getSnapshot(id);
  if (!s) throw snapshotNotFound(id, field);
  return s;
}

type VolumeWith = { volume: Volume; attachments: Attachment[] };

/** The live volume with its attachments in `statuses` (one round trip); 404 when there is none. */
export async function requireVolumeWith(
  store: Store,
  id: string,
  statuses: readonly AttachmentStatus[],
): Promise<VolumeWith> {
  const found = await store.volumeWithAttachments(id, statuses);
  if (!found) throw volumeNotFound(id);
  return found;
}

/**
 * As `requireVolumeWith`, but a volume deleted earlier is null rather than a 404: an operation
 * that is harmless to repeat stays harmless after the delete. One that never existed is a 404.
 */
export async function volumeWithUnlessDeleted(
  store: Store,
  id: string,
  statuses: readonly AttachmentStatus[],
): Promise<VolumeWith | null> {
  const found = await store.volumeWithAttachments(id, statuses);
  if (found) return found;
  if (await store.getVolume(id, { includeDeleted: true })) return null;
  throw volumeNotFound(id);
}
