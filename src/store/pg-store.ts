import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Attachment, AttachmentStatus, Host, Snapshot, Volume } from '../driver/model.ts';
import type { AttachmentFilter, NewAttachment, NewSnapshot, NewVolume, Store } from '../driver/ports.ts';
import {
  type AttachmentJson,
  type AttachmentRow,
  fromJson,
  type HostRow,
  type SnapshotRow,
  toAttachment,
  toHost,
  toSnapshot,
  toVolume,
  type VolumeRow,
} from './rows.ts';

/**
 * `Store` on PostgreSQL. With `connection` set (inside a volume lock) every query runs on that
 * connection, so the lock holder never waits for a second pooled connection.
 */
export class PgStore implements Store {
  constructor(
    private readonly db: Knex,
    private readonly connection?: unknown,
  ) {}

  private table<R extends object>(name: string): Knex.QueryBuilder<R, R[]> {
    const q = this.db<R>(name);
    return (this.connection ? q.connection(this.connection) : q) as Knex.QueryBuilder<R, R[]>;
  }

  async getVolume(id: string, opts: { includeDeleted?: boolean } = {}): Promise<Volume | null> {
    const q = this.table<VolumeRow>('volumes').where({ id });
    if (!opts.includeDeleted) q.whereNull('deleted_at');
    const row = await q.first();
    return row ? toVolume(row as VolumeRow) : null;
  }

  async volumeWithAttachments(
    id: string,
    statuses: readonly AttachmentStatus[],
  ): Promise<{ volume: Volume; attachments: Attachment[] } | null> {
    // The attachments come back as one JSON array beside the volume's columns (a join would
    // repeat the volume per attachment and clash on id, status and the timestamps).
    const q = this.db.raw(
      `SELECT v.*, (SELECT coalesce(json_agg(a ORDER BY a.created_at, a.id), '[]'::json)
                      FROM attachments a WHERE a.volume_id = v.id AND a.status = ANY(?)) AS attachments_json
         FROM volumes v WHERE v.id = ? AND v.deleted_at IS NULL`,
      [statuses as string[], id],
    );
    const { rows } = (await (this.connection ? q.connection(this.connection) : q)) as {
      rows: (VolumeRow & { attachments_json: AttachmentJson[] })[];
    };
    const row = rows[0];
    if (!row) return null;
    return { volume: toVolume(row), attachments: row.attachments_json.map(fromJson).map(toAttachment) };
  }

  async insertVolume(v: NewVolume): Promise<Volume> {
    const cols = {
      id: v.id,
      name: v.name,
      size_gb: v.sizeGb,
      replicas: v.replicas,
      multiattach: v.multiattach,
      status: v.status,
      compression: v.compression ?? false,
      thin_provisioned: v.thinProvisioned ?? true,
      qos_policy_id: v.qosPolicyId ?? null,
      source_snapshot_id: v.sourceSnapshotId ?? null,
      source_volume_id: v.sourceVolumeId ?? null,
    };
    // A live row with this id wins (idempotent create); a soft-deleted one is replaced by the new volume.
    const rows = (await this.table<VolumeRow>('volumes')
      .insert(cols)
      .onConflict('id')
      .merge({
        ...cols,
        backend_uuid: null,
        deleted_at: null,
        created_at: this.db.fn.now(),
        updated_at: this.db.fn.now(),
      } as never)
      .whereNotNull('volumes.deleted_at')
      .returning('*')) as VolumeRow[];
    if (rows.length > 0) return toVolume(rows[0]!);
    const existing = await this.getVolume(v.id);
    if (!existing) throw new Error(`volume ${v.id} vanished during insert`);
    return existing;
  }

  async updateVolume(id: string, patch: Partial<Pick<Volume, 'status' | 'backendUuid' | 'sizeGb'>>): Promise<Volume> {
    const cols: Record<string, unknown> = { updated_at: this.db.fn.now() };
    if (patch.status !== undefined) cols.status = patch.status;
    if (patch.backendUuid !== undefined) cols.backend_uuid = patch.backendUuid;
    if (patch.sizeGb !== undefined) cols.size_gb = patch.sizeGb;
    const rows = (await this.table<VolumeRow>('volumes')
      .where({ id })
      .update(cols as never)
      .returning('*')) as VolumeRow[];
    if (rows.length === 0) throw new Error(`volume ${id} not found for update`);
    return toVolume(rows[0]!);
  }

  async getHost(nqn: string): Promise<Host | null> {
    const row = (await this.table<HostRow>('hosts').where({ nqn }).first()) as HostRow | undefined;
    return row ? toHost(row) : null;
  }

  async getAttachment(id: string): Promise<Attachment | null> {
    const row = await this.table<AttachmentRow>('attachments').where({ id }).first();
    return row ? toAttachment(row as AttachmentRow) : null;
  }

  async listAttachments(filter: AttachmentFilter): Promise<Attachment[]> {
    const q = this.table<AttachmentRow>('attachments');
    if (filter.volumeId) q.where('volume_id', filter.volumeId);
    if (filter.hostNqn) q.where('host_nqn', filter.hostNqn);
    if (filter.status) q.where('status', filter.status);
    const rows = (await q.orderBy([{ column: 'created_at' }, { column: 'id' }])) as AttachmentRow[];
    return rows.map(toAttachment);
  }

  async attachmentsOfVolume(volumeId: string, statuses: readonly AttachmentStatus[]): Promise<Attachment[]> {
    const rows = (await this.table<AttachmentRow>('attachments')
      .where('volume_id', volumeId)
      .whereIn('status', statuses as AttachmentStatus[])
      .orderBy([{ column: 'created_at' }, { column: 'id' }])) as AttachmentRow[];
    return rows.map(toAttachment);
  }

  async insertAttachment(a: NewAttachment): Promise<Attachment> {
    const rows = (await this.table<AttachmentRow>('attachments')
      .insert({
        id: randomUUID(),
        volume_id: a.volumeId,
        host_nqn: a.hostNqn,
        host_name: a.hostName,
        instance_uuid: a.instanceUuid,
        connector: JSON.stringify(a.connector) as never,
        multipath_mode: a.multipathMode,
        connected_by: a.connectedBy,
        status: 'attaching',
      })
      .returning('*')) as AttachmentRow[];
    return toAttachment(rows[0]!);
  }

  async updateAttachment(
    id: string,
    patch: Partial<
      Pick<
        Attachment,
        'status' | 'connectionInfo' | 'connector' | 'multipathMode' | 'detachedAt' | 'detachForce' | 'hostPortals'
      >
    >,
  ): Promise<Attachment> {
    const cols: Record<string, unknown> = { updated_at: this.db.fn.now() };
    if (patch.status !== undefined) cols.status = patch.status;
    if (patch.connectionInfo !== undefined) {
      const json = patch.connectionInfo === null ? null : JSON.stringify(patch.connectionInfo);
      cols.connection_info = json;
      // Only a real change moves the timestamp (jsonb equality ignores key order).
      cols.portals_changed_at = this.db.raw(
        'CASE WHEN connection_info IS DISTINCT FROM ?::jsonb THEN now() ELSE portals_changed_at END',
        [json],
      );
    }
    if (patch.connector !== undefined) cols.connector = JSON.stringify(patch.connector);
    if (patch.multipathMode !== undefined) cols.multipath_mode = patch.multipathMode;
    if (patch.detachedAt !== undefined) cols.detached_at = patch.detachedAt;
    if (patch.detachForce !== undefined) cols.detach_force = patch.detachForce;
    if (patch.hostPortals !== undefined)
      cols.host_portals = patch.hostPortals === null ? null : JSON.stringify(patch.hostPortals);
    const rows = (await this.table<AttachmentRow>('attachments')
      .where({ id })
      .update(cols as never)
      .returning('*')) as AttachmentRow[];
    if (rows.length === 0) throw new Error(`attachment ${id} not found for update`);
    return toAttachment(rows[0]!);
  }

  async markVolumeDeleted(id: string): Promise<void> {
    await this.table('volumes')
      .where({ id })
      .whereNull('deleted_at')
      .update({ status: 'deleted', deleted_at: this.db.fn.now(), updated_at: this.db.fn.now() } as never);
  }

  async getSnapshot(id: string): Promise<Snapshot | null> {
    const row = await this.table<SnapshotRow>('snapshots').where({ id }).first();
    return row ? toSnapshot(row as SnapshotRow) : null;
  }

  async snapshotsOfVolume(volumeId: string): Promise<Snapshot[]> {
    const rows = (await this.table<SnapshotRow>('snapshots')
      .where('volume_id', volumeId)
      .orderBy([{ column: 'created_at' }, { column: 'id' }])) as SnapshotRow[];
    return rows.map(toSnapshot);
  }

  async insertSnapshot(s: NewSnapshot): Promise<Snapshot> {
    const rows = (await this.table<SnapshotRow>('snapshots')
      .insert({
        id: s.id,
        volume_id: s.volumeId,
        name: s.name,
        backend_name: s.backendName,
        size_gb: s.sizeGb,
        status: s.status,
      })
      .onConflict('id')
      .ignore()
      .returning('*')) as SnapshotRow[];
    if (rows.length > 0) return toSnapshot(rows[0]!);
    const existing = await this.getSnapshot(s.id);
    if (!existing) throw new Error(`snapshot ${s.id} vanished during insert`);
    return existing;
  }

  async updateSnapshot(
    id: string,
    patch: Partial<Pick<Snapshot, 'status' | 'backendUuid' | 'sizeGb'>>,
  ): Promise<Snapshot> {
    const cols: Record<string, unknown> = { updated_at: this.db.fn.now() };
    if (patch.status !== undefined) cols.status = patch.status;
    if (patch.backendUuid !== undefined) cols.backend_uuid = patch.backendUuid;
    if (patch.sizeGb !== undefined) cols.size_gb = patch.sizeGb;
    const rows = (await this.table<SnapshotRow>('snapshots')
      .where({ id })
      .update(cols as never)
      .returning('*')) as SnapshotRow[];
    if (rows.length === 0) throw new Error(`snapshot ${id} not found for update`);
    return toSnapshot(rows[0]!);
  }

  async deleteSnapshot(id: string): Promise<void> {
    await this.table('snapshots').where({ id }).delete();
  }
}
