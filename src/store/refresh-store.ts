/**
 * The portal refresh's one read outside any lock: every attached attachment of a live volume with
 * what rebuilding its connection info needs and its volume's backend UUID. One statement, so
 * that a pass over 10,000 attachments costs one round trip rather than one per volume.
 */
import type { Knex } from 'knex';
import type { ConnectionInfo, MultipathMode } from '../driver/model.ts';
import type { AttachedForRefresh, RefreshStore } from '../driver/ports.ts';

interface Row {
  id: string;
  volume_id: string;
  backend_uuid: string | null;
  connection_info: ConnectionInfo | null;
  multipath_mode: string;
  connector_nqn: string | null;
}

export class PgRefreshStore implements RefreshStore {
  constructor(private readonly db: Knex) {}

  async attachedForRefresh(): Promise<AttachedForRefresh[]> {
    const { rows } = (await this.db.raw(
      `SELECT a.id, a.volume_id, v.backend_uuid, a.connection_info, a.multipath_mode,
              a.connector->>'nqn' AS connector_nqn
         FROM attachments a JOIN volumes v ON v.id = a.volume_id AND v.deleted_at IS NULL
        WHERE a.status = 'attached'
        ORDER BY a.volume_id, a.created_at, a.id`,
    )) as { rows: Row[] };
    return rows.map((r) => ({
      id: r.id,
      volumeId: r.volume_id,
      backendUuid: r.backend_uuid,
      connectionInfo: r.connection_info,
      multipathMode: r.multipath_mode as MultipathMode,
      connector: { nqn: r.connector_nqn ?? '' },
    }));
  }
}
