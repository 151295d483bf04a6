import type { Knex } from 'knex';
import type { AgentReport, Attachment, Connector, Host, PathStatus } from '../driver/model.ts';
import type { AgentView, AgentViewOptions, HostStore } from '../driver/ports.ts';
import { HOST_CHANNEL } from './change-feed.ts';
import { type AttachmentRow, type HostRow, toAttachment, toHost } from './pg-store.ts';

/** Ended attachments stay in an agent's list this long, or until it reports them disconnected. */
const TEARDOWN_WINDOW = "interval '7 days'";

export class PgHostStore implements HostStore {
  constructor(private readonly db: Knex) {}

  async issueToken(nqn: string, name: string, tokenHash: string): Promise<Host> {
    const rows = (await this.db('hosts')
      .insert({ nqn, name, token_hash: tokenHash, token_issued_at: this.db.fn.now() })
      .onConflict('nqn')
      .merge({ name, token_hash: tokenHash, token_issued_at: this.db.fn.now() })
      .returning('*')) as HostRow[];
    // The old token stops working: its polls must find that out now, not when they time out.
    await this.wakePolls(nqn);
    return toHost(rows[0]!);
  }

  async revokeToken(nqn: string): Promise<boolean> {
    const n = await this.db('hosts').where({ nqn }).update({ token_hash: null, token_issued_at: null });
    if (n > 0) await this.wakePolls(nqn);
    return n > 0;
  }

  /** Wakes the host's long polls in every process, so that they check their token again now. */
  private async wakePolls(nqn: string): Promise<void> {
    await this.db.raw('SELECT pg_notify(?, ?)', [HOST_CHANNEL, nqn]);
  }

  async hostByTokenHash(tokenHash: string): Promise<Host | null> {
    const row = (await this.db('hosts').where({ token_hash: tokenHash }).first()) as HostRow | undefined;
    return row ? toHost(row) : null;
  }

  async getHost(nqn: string): Promise<Host | null> {
    const row = (await this.db('hosts').where({ nqn }).first()) as HostRow | undefined;
    return row ? toHost(row) : null;
  }

  async listHosts(): Promise<Host[]> {
    return ((await this.db('hosts').orderBy('nqn')) as HostRow[]).map(toHost);
  }

  async registerHost(nqn: string, connector: Connector): Promise<Host> {
    const rows = (await this.db('hosts')
      .where({ nqn })
      .update({
        connector: JSON.stringify(connector),
        name: connector.host,
        registered_at: this.db.fn.now(),
        last_seen_at: this.db.fn.now(),
      })
      .returning('*')) as HostRow[];
    if (rows.length === 0) throw new Error(`host ${nqn} not found for registration`);
    return toHost(rows[0]!);
  }

  async touchHost(nqn: string): Promise<void> {
    await this.db('hosts').where({ nqn }).update({ last_seen_at: this.db.fn.now() });
  }

  async agentView(nqn: string, opts: AgentViewOptions): Promise<AgentView> {
    // One statement, one snapshot: the version and the list agree (two reads could pair an old
    // version with a newer list, or the reverse). A data-modifying WITH runs exactly once even
    // unreferenced (PostgreSQL manual, "Data-Modifying Statements in WITH"); the SELECT still
    // sees the snapshot taken before it, which is all it needs of hosts: the version.
    const touch = opts.touch ? 'WITH touched AS (UPDATE hosts SET last_seen_at = now() WHERE nqn = :nqn) ' : '';
    const { rows } = (await this.db.raw(
      `${touch}SELECT h.version AS host_version, ${opts.tokenHash === undefined ? 'true' : 'h.token_hash = :tokenHash'} AS token_valid,
              a.*, v.size_gb AS volume_size_gb
         FROM hosts h
         LEFT JOIN (attachments a JOIN volumes v ON v.id = a.volume_id)
           ON h.version IS DISTINCT FROM CAST(:since AS bigint)
          AND a.host_nqn = h.nqn
          AND a.connection_info IS NOT NULL
          AND (a.status IN ('attaching', 'attached', 'detaching')
               -- A detaching one stays however long it waits: the service revokes only once the
               -- agent reported it released, so dropping it would leave the detach pending forever.
               OR (a.status IN ('detached', 'error')
                   AND (a.agent_state IS NULL OR a.agent_state <> 'disconnected')
                   AND a.updated_at > now() - ${TEARDOWN_WINDOW}))
        WHERE h.nqn = :nqn
        ORDER BY a.created_at, a.id`,
      { nqn, since: opts.since, ...(opts.tokenHash === undefined ? {} : { tokenHash: opts.tokenHash }) },
    )) as { rows: (AttachmentRow & { host_version: string; token_valid: boolean; volume_size_gb: number })[] };
    const head = rows[0];
    if (!head)
      return { version: 0, tokenValid: opts.tokenHash === undefined, attachments: opts.since === 0 ? null : [] };
    const version = Number(head.host_version);
    return {
      version,
      tokenValid: head.token_valid === true,
      attachments:
        version === opts.since
          ? null
          : rows
              .filter((r) => r.id !== null)
              .map((r) => ({ attachment: toAttachment(r), volumeSizeGb: r.volume_size_gb })),
    };
  }

  async saveReport(attachmentId: string, report: AgentReport): Promise<Attachment> {
    // One transaction on one connection: the row lock orders concurrent reports of the same
    // attachment, so each change is recorded once, against the report it followed.
    return this.db.transaction(async (trx) => {
      const old = (await trx('attachments')
        .where({ id: attachmentId })
        .forUpdate()
        .first('agent_state', 'health', 'paths')) as
        | Pick<AttachmentRow, 'agent_state' | 'health' | 'paths'>
        | undefined;
      if (!old) throw new Error(`attachment ${attachmentId} not found for report`);
      const stateChanged = old.agent_state !== report.state || old.health !== report.health;
      const changed = stateChanged || pathSignature(old.paths ?? []) !== pathSignature(report.paths);
      const rows = (await trx('attachments')
        .where({ id: attachmentId })
        .update({
          agent_state: report.state,
          device_path: report.devicePath,
          size_bytes: report.sizeBytes,
          health: report.health,
          paths: JSON.stringify(report.paths),
          agent_error: report.error === null ? null : JSON.stringify(report.error),
          reported_at: report.reportedAt,
          ...(stateChanged ? { health_since: report.reportedAt } : {}),
        })
        .returning('*')) as AttachmentRow[];
      if (changed)
        await trx('attachment_events').insert({
          attachment_id: attachmentId,
          at: report.reportedAt,
          from_state: old.agent_state,
          to_state: report.state,
          from_health: old.health,
          to_health: report.health,
          paths: JSON.stringify(report.paths),
          error: report.error === null ? null : JSON.stringify(report.error),
        });
      return toAttachment(rows[0]!);
    });
  }
}

/** What makes a path change worth a history entry: which portal, its controller state and ANA state. */
function pathSignature(paths: PathStatus[]): string {
  return paths
    .map((p) => `${p.transport}:${p.address}:${p.port}=${p.state}/${p.ana_state ?? '-'}`)
    .sort()
    .join(',');
}
