/**
 * The hosts' DH-HMAC-CHAP secrets (`host_secrets`, sealed by SecretBox: the database never holds
 * a plaintext secret) and their rotation state (`host_auth`), on PostgreSQL. Migration
 * 20261207140000 describes the tables.
 */
import type { Knex } from 'knex';
import type { DhchapPair, HostAuthState, HostSecretStore, RotationStep } from '../driver/ports.ts';
import type { SecretBox } from './secret-box.ts';

interface AuthRow {
  host_nqn: string;
  generation: number;
  next_generation: number | null;
  step: RotationStep;
  last_error: string | null;
  updated_at: Date;
}

const toState = (r: AuthRow): HostAuthState => ({
  hostNqn: r.host_nqn,
  generation: r.generation,
  nextGeneration: r.next_generation,
  step: r.step,
  lastError: r.last_error,
  updatedAt: r.updated_at,
});

/** The additional authenticated data of a sealed secret: the row and column it belongs to. */
const context = (nqn: string, generation: number, which: 'host' | 'ctrl') => `${nqn}\n${generation}\n${which}`;

export class PgHostSecretStore implements HostSecretStore {
  constructor(
    private readonly db: Knex,
    private readonly box: SecretBox,
  ) {}

  async state(nqn: string): Promise<HostAuthState | null> {
    const row = (await this.db('host_auth').where({ host_nqn: nqn }).first()) as AuthRow | undefined;
    return row ? toState(row) : null;
  }

  async begin(nqn: string, pair: Omit<DhchapPair, 'generation'>): Promise<HostAuthState> {
    return this.db.transaction(async (trx) => {
      await trx.raw('INSERT INTO host_auth (host_nqn) VALUES (?) ON CONFLICT (host_nqn) DO NOTHING', [nqn]);
      // The row lock orders concurrent begins: the second sees the first's rotation and joins it.
      const cur = (await trx('host_auth').where({ host_nqn: nqn }).forUpdate().first()) as AuthRow;
      if (cur.step !== 'idle') return toState(cur);
      const next = cur.generation + 1;
      // A generation retired and then begun again cannot happen (generations only grow), but a
      // row left by a rotation whose state was lost would: replace it rather than fail.
      await trx('host_secrets')
        .insert({
          host_nqn: nqn,
          generation: next,
          host_secret: this.box.seal(pair.hostSecret, context(nqn, next, 'host')),
          ctrl_secret: this.box.seal(pair.ctrlSecret, context(nqn, next, 'ctrl')),
        })
        .onConflict(['host_nqn', 'generation'])
        .merge(['host_secret', 'ctrl_secret', 'created_at', 'retired_at']);
      const rows = (await trx('host_auth')
        .where({ host_nqn: nqn })
        .update({ next_generation: next, step: 'staged', last_error: null, updated_at: trx.fn.now() })
        .returning('*')) as AuthRow[];
      return toState(rows[0]!);
    });
  }

  async advance(nqn: string, next: number, from: RotationStep, to: RotationStep): Promise<boolean> {
    const n = await this.db('host_auth')
      .where({ host_nqn: nqn, next_generation: next, step: from })
      .update({ step: to, last_error: null, updated_at: this.db.fn.now() });
    return n > 0;
  }

  async recordError(nqn: string, message: string): Promise<void> {
    await this.db('host_auth')
      .where({ host_nqn: nqn })
      .update({ last_error: message.slice(0, 1000), updated_at: this.db.fn.now() });
  }

  async finish(nqn: string, next: number): Promise<boolean> {
    return this.db.transaction(async (trx) => {
      const n = await trx('host_auth')
        .where({ host_nqn: nqn, next_generation: next, step: 'confirmed' })
        .update({ generation: next, next_generation: null, step: 'idle', last_error: null, updated_at: trx.fn.now() });
      if (n === 0) return false;
      await trx('host_secrets')
        .where({ host_nqn: nqn })
        .andWhere('generation', '<', next)
        .whereNull('retired_at')
        .update({ host_secret: null, ctrl_secret: null, retired_at: trx.fn.now() });
      return true;
    });
  }

  async pair(nqn: string, generation: number): Promise<DhchapPair | null> {
    const row = (await this.db('host_secrets').where({ host_nqn: nqn, generation }).whereNull('retired_at').first()) as
      | { host_secret: Buffer; ctrl_secret: Buffer }
      | undefined;
    if (!row) return null;
    return {
      generation,
      hostSecret: this.box.open(row.host_secret, context(nqn, generation, 'host')),
      ctrlSecret: this.box.open(row.ctrl_secret, context(nqn, generation, 'ctrl')),
    };
  }

  async delivery(nqn: string): Promise<{ current: DhchapPair; previous: DhchapPair | null } | null> {
    // The state and the generations it names, in one statement (one snapshot: a rotation moving
    // meanwhile cannot pair a new state with an old set of rows).
    const { rows } = (await this.db.raw(
      `SELECT s.generation, s.host_secret, s.ctrl_secret,
              s.generation = CASE WHEN a.step IN ('at_backend', 'confirmed') THEN a.next_generation
                                  ELSE a.generation END AS is_current
         FROM host_auth a
         JOIN host_secrets s ON s.host_nqn = a.host_nqn AND s.retired_at IS NULL
          AND (s.generation = a.generation
               OR (a.step IN ('at_backend', 'confirmed') AND s.generation = a.next_generation))
        WHERE a.host_nqn = ?`,
      [nqn],
    )) as { rows: { generation: number; host_secret: Buffer; ctrl_secret: Buffer; is_current: boolean }[] };
    const open = (r: (typeof rows)[number]): DhchapPair => ({
      generation: r.generation,
      hostSecret: this.box.open(r.host_secret, context(nqn, r.generation, 'host')),
      ctrlSecret: this.box.open(r.ctrl_secret, context(nqn, r.generation, 'ctrl')),
    });
    const current = rows.find((r) => r.is_current);
    const previous = rows.find((r) => !r.is_current);
    return current ? { current: open(current), previous: previous ? open(previous) : null } : null;
  }

  async pathsOnGeneration(nqn: string, generation: number): Promise<boolean> {
    // Only live controllers count: a path that is down authenticates anew, with the newest secret
    // the agent holds, when it comes back. A path without `auth_generation` (an agent older than
    // in-band authentication, or a controller that did not authenticate) holds the rotation.
    const { rows } = (await this.db.raw(
      `SELECT NOT EXISTS (
         SELECT 1 FROM attachments a
           CROSS JOIN LATERAL jsonb_array_elements(
             CASE jsonb_typeof(a.paths) WHEN 'array' THEN a.paths ELSE '[]'::jsonb END) p
          WHERE a.host_nqn = :nqn
            AND a.status IN ('attaching', 'attached', 'detaching')
            AND p->>'state' = 'live'
            AND coalesce(CASE jsonb_typeof(p->'auth_generation') WHEN 'number'
                              THEN (p->>'auth_generation')::int END, -1) < :generation
       ) AS done`,
      { nqn, generation },
    )) as { rows: { done: boolean }[] };
    return rows[0]!.done;
  }

  async notifyAgent(nqn: string): Promise<void> {
    // The host's version moves and its polls wake in every process (migration 20261121010000).
    await this.db.raw('SELECT portalis_bump_host(?, ?)', [nqn, nqn]);
  }

  async unfinished(): Promise<string[]> {
    const rows = (await this.db('host_auth').whereNot({ step: 'idle' }).orderBy('host_nqn')) as AuthRow[];
    return rows.map((r) => r.host_nqn);
  }
}
