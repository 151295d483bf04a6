import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Attachment, AttachmentStatus, ConnectionInfo, Connector, MultipathMode, Volume, VolumeStatus } from '../driver/model.ts';
import type { AttachmentFilter, NewAttachment, NewVolume, Store } from '../driver/ports.ts';

interface VolumeRow {
  id: string;
  name: string;
  size_gb: number;
  replicas: number;
  multiattach: boolean;
  status: string;
  backend_uuid: string | null;
  created_at: Date;
  updated_at: Date;
}

interface AttachmentRow {
  id: string;
  volume_id: string;
  host_nqn: string;
  host_name: string;
  instance_uuid: string | null;
  connector: Connector;
  multipath_mode: string;
  connection_info: ConnectionInfo | null;
  status: string;
  created_at: Date;
  updated_at: Date;
  detached_at: Date | null;
}

const toVolume = (r: VolumeRow): Volume => ({
  id: r.id,
  name: r.name,
  sizeGb: r.size_gb,
  replicas: r.replicas,
  multiattach: r.multiattach,
  status: r.status as VolumeStatus,
  backendUuid: r.backend_uuid,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toAttachment = (r: AttachmentRow): Attachment => ({
  id: r.id,
  volumeId: r.volume_id,
  hostNqn: r.host_nqn,
  hostName: r.host_name,
  instanceUuid: r.instance_uuid,
  connector: r.connector,
  multipathMode: r.multipath_mode as MultipathMode,
  connectionInfo: r.connection_info,
  status: r.status as AttachmentStatus,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  detachedAt: r.detached_at,
});

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

  async getVolume(id: string): Promise<Volume | null> {
    const row = await this.table<VolumeRow>('volumes').where({ id }).first();
    return row ? toVolume(row as VolumeRow) : null;
  }

  async insertVolume(v: NewVolume): Promise<Volume> {
    const rows = (await this.table<VolumeRow>('volumes')
      .insert({ id: v.id, name: v.name, size_gb: v.sizeGb, replicas: v.replicas, multiattach: v.multiattach, status: v.status })
      .onConflict('id')
      .ignore()
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
    const rows = (await this.table<VolumeRow>('volumes').where({ id }).update(cols as never).returning('*')) as VolumeRow[];
    if (rows.length === 0) throw new Error(`volume ${id} not found for update`);
    return toVolume(rows[0]!);
  }

  async deleteVolume(id: string): Promise<void> {
    await this.table('volumes').where({ id }).delete();
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
        status: 'attaching',
      })
      .returning('*')) as AttachmentRow[];
    return toAttachment(rows[0]!);
  }

  async updateAttachment(
    id: string,
    patch: Partial<Pick<Attachment, 'status' | 'connectionInfo' | 'connector' | 'multipathMode' | 'detachedAt'>>,
  ): Promise<Attachment> {
    const cols: Record<string, unknown> = { updated_at: this.db.fn.now() };
    if (patch.status !== undefined) cols.status = patch.status;
    if (patch.connectionInfo !== undefined) cols.connection_info = patch.connectionInfo === null ? null : JSON.stringify(patch.connectionInfo);
    if (patch.connector !== undefined) cols.connector = JSON.stringify(patch.connector);
    if (patch.multipathMode !== undefined) cols.multipath_mode = patch.multipathMode;
    if (patch.detachedAt !== undefined) cols.detached_at = patch.detachedAt;
    const rows = (await this.table<AttachmentRow>('attachments').where({ id }).update(cols as never).returning('*')) as AttachmentRow[];
    if (rows.length === 0) throw new Error(`attachment ${id} not found for update`);
    return toAttachment(rows[0]!);
  }
}
