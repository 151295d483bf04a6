import type { Knex } from 'knex';
import type { AgentReport, Attachment, Connector, Host } from '../driver/model.ts';
import type { AgentView, AgentViewOptions, HostStore } from '../driver/ports.ts';
import { HOST_CHANNEL } from './change-feed.ts';
import { type AttachmentRow, type HostRow, toAttachment, toHost } from './rows.ts';

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

  async registerHost(nqn: string, connector: Connector, agentVersion: string | null): Promise<Host> {
    const rows = (await this.db('hosts')
      .where({ nqn })
      .update({
        connector: JSON.stringify(connector),
        name: connector.host,
        registered_at: this.db.fn.now(),
        last_seen_at: this.db.fn.now(),
        agent_version: agentVersion,
      })
      .returning('*')) as HostRow[];
    if (rows.length === 0) throw new Error(`host ${nqn} not found for registration`);
    return toHost(rows[0]!);
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

  async saveReport(hostNqn: string, attachmentId: string, report: AgentReport): Promise<Attachment | null> {
    // One statement: one round trip (the report path made eight: the token check aside, a read of
    // the attachment, the host's touch, BEGIN, a locking read, the update, the history insert and
    // COMMIT), atomic like the transaction it replaces. The row lock of `old` orders concurrent
    // reports of one attachment: one that waits for it reads the row as the other left it
    // (READ COMMITTED re-checks a row updated meanwhile: PostgreSQL manual, "Read Committed
    // Isolation Level"), so each change is recorded once, against the report it followed. Every
    // data-modifying part of WITH runs exactly once, referenced or not (PostgreSQL manual,
    // "Data-Modifying Statements in WITH"). Another host's attachment matches nothing: null.
    const { rows } = (await this.db.raw(
      `WITH r AS (
         SELECT CAST(:state AS text) AS state, CAST(:health AS text) AS health, CAST(:device AS text) AS device,
                CAST(:size AS bigint) AS size, CAST(:paths AS jsonb) AS paths, CAST(:error AS jsonb) AS error,
                CAST(:at AS timestamptz) AS at
       ), old AS (
         SELECT id, agent_state, health, ${signatureSql('paths')} AS signature
           FROM attachments WHERE id = :id AND host_nqn = :host FOR UPDATE
       ), touched AS (
         UPDATE hosts SET last_seen_at = now() WHERE nqn = :host AND EXISTS (SELECT 1 FROM old)
       ), saved AS (
         UPDATE attachments a
            SET agent_state = r.state, device_path = r.device, size_bytes = r.size, health = r.health,
                paths = r.paths, agent_error = r.error, reported_at = r.at,
                health_since = CASE WHEN old.agent_state IS DISTINCT FROM r.state
                                      OR old.health IS DISTINCT FROM r.health THEN r.at ELSE a.health_since END
           FROM old, r WHERE a.id = old.id
         RETURNING a.*, old.agent_state AS from_state, old.health AS from_health,
                   (old.agent_state IS DISTINCT FROM r.state OR old.health IS DISTINCT FROM r.health
                    OR old.signature <> ${signatureSql('r.paths')}) AS changed
       ), logged AS (
         INSERT INTO attachment_events (attachment_id, at, from_state, to_state, from_health, to_health, paths, error)
         SELECT s.id, r.at, s.from_state, r.state, s.from_health, r.health, r.paths, r.error
           FROM saved s, r WHERE s.changed
       )
       SELECT * FROM saved`,
      {
        id: attachmentId,
        host: hostNqn,
        state: report.state,
        device: report.devicePath,
        size: report.sizeBytes,
        health: report.health,
        paths: JSON.stringify(report.paths),
        error: report.error === null ? null : JSON.stringify(report.error),
        at: report.reportedAt,
      },
    )) as { rows: AttachmentRow[] };
    return rows[0] ? toAttachment(rows[0]) : null;
  }
}

/**
 * What makes a path change worth a history entry, in SQL over a jsonb array of paths: which
 * portal, its controller state and ANA state, in a fixed order (byte order, so the sort does not
 * depend on the database's collation).
 */
function signatureSql(paths: string): string {
  return `(SELECT coalesce(string_agg(s, ',' ORDER BY s COLLATE "C"), '')
             FROM (SELECT format('%s:%s:%s=%s/%s', p->>'transport', p->>'address', p->>'port', p->>'state',
                                 coalesce(p->>'ana_state', '-')) AS s
                     FROM jsonb_array_elements(CASE jsonb_typeof(${paths}) WHEN 'array' THEN ${paths} ELSE '[]' END) p) x)`;
}
