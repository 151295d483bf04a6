/**
 * The hosts' DH-HMAC-CHAP secrets (`host_secrets`, sealed by SecretBox: the database never holds
 * a plaintext secret) and their rotation state (`host_auth`), on PostgreSQL. Migration
 * 20261207140000 describes the tables.
 */
import type { Knex } from 'knex';
import { DriverError } from '../driver/errors.ts';
import { ConfigError } from '../shared/env.ts';
import type { DhchapPair, HostAuthState, HostSecretStore, RotationStep } from '../driver/ports.ts';
import { KeyedMutex } from '../shared/keyed-mutex.ts';
import { holdAdvisoryLock } from './locks.ts';
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

/** The plaintext and context of the key check value: not a secret, only proof that the key opens it. */
const KEY_CHECK = 'portalis secrets key check v1';

/** The additional authenticated data of a sealed secret: the row and column it belongs to. */
const context = (nqn: string, generation: number, which: 'host' | 'ctrl') => `${nqn}\n${generation}\n${which}`;

export class PgHostSecretStore implements HostSecretStore {
  private readonly local = new KeyedMutex();

  /** `connection`: the reserved connection of a `withHostLock` holder; every statement runs on it. */
  constructor(
    private readonly db: Knex,
    private readonly box: SecretBox,
    private readonly connection?: unknown,
    private readonly opts: { lockTimeoutMs?: number } = {},
  ) {}

  private q(table: string): Knex.QueryBuilder {
    return this.connection ? this.db(table).connection(this.connection) : this.db(table);
  }
  private raw(sql: string, bindings: Knex.RawBinding[] | Knex.ValueDict): Knex.Raw {
    const r = this.db.raw(sql, bindings as Knex.RawBinding[]);
    return this.connection ? r.connection(this.connection) : r;
  }
  private tx<T>(fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
    return this.connection ? this.db.transaction(fn, { connection: this.connection }) : this.db.transaction(fn);
  }

  /**
   * Runs `fn` holding the host's rotation lock: a PostgreSQL session-level advisory lock on a
   * connection reserved for the holder, across every replica. A step's backend call and the
   * state change after it happen under it, so no replica acting on a stale state can land an old
   * pair at the backend after another moved on (LightOS's transport re-sends a PUT until its
   * deadline). Session-level, not a transaction's: the holder's writes commit as they happen.
   * `fn` gets a store on the same connection: a holder never waits for a second pooled one.
   */
  withHostLock<T>(nqn: string, fn: (store: HostSecretStore) => Promise<T>): Promise<T> {
    if (this.connection) return fn(this); // already held on this connection
    const timeoutMs = this.opts.lockTimeoutMs ?? 120_000;
    return this.local.run(nqn, () =>
      holdAdvisoryLock(
        this.db,
        `portalis:host-auth:${nqn}`,
        { timeoutMs, busy: `another rotation step of host ${nqn} is still running; retry later` },
        (conn) => fn(new PgHostSecretStore(this.db, this.box, conn)),
      ),
    );
  }

  /**
   * Refuses a secrets key that is not the fleet's: the first replica with a key seals a check value
   * (`secrets_key_check`, migration 20261207200000); every replica opens it at start-up. Without it
   * a replica started with another key would seal new secrets its peers cannot open, and each
   * host's poll through a peer would go without them (`secrets_unreadable`). On the first start
   * with the table empty, a secret already stored must open with this key before it is vouched for.
   */
  async checkKey(): Promise<void> {
    const refuse = () =>
      new ConfigError(
        'PORTALIS_SECRETS_KEY',
        'this key does not open the secrets this database holds: another key sealed them. Every replica ' +
          'needs the same key (docs/security.md, "Replacing the secrets key")',
      );
    const opens = (sealed: Buffer, context: string): boolean => {
      try {
        this.box.open(sealed, context);
        return true;
      } catch {
        return false; // an authentication tag mismatch says nothing more than `refuse` does
      }
    };
    await this.tx(async (trx) => {
      // Serialises first starts: a second replica waits here and then reads the first's check value.
      await trx.raw('LOCK TABLE secrets_key_check IN SHARE ROW EXCLUSIVE MODE');
      const row = (await trx('secrets_key_check').where({ id: 1 }).first()) as { sealed: Buffer } | undefined;
      if (row) {
        if (!opens(row.sealed, KEY_CHECK)) throw refuse();
        return;
      }
      // No check value yet (the first start of a release that has it): secrets sealed before it
      // must open with this key, or this replica would vouch for a key the fleet does not hold.
      const sealed = (await trx('host_secrets')
        .whereNull('retired_at')
        .first('host_nqn', 'generation', 'host_secret')) as
        | { host_nqn: string; generation: number; host_secret: Buffer }
        | undefined;
      if (sealed && !opens(sealed.host_secret, context(sealed.host_nqn, sealed.generation, 'host'))) throw refuse();
      await trx('secrets_key_check').insert({ id: 1, sealed: this.box.seal(KEY_CHECK, KEY_CHECK) });
    });
  }

  async state(nqn: string): Promise<HostAuthState | null> {
    const row = (await this.q('host_auth').where({ host_nqn: nqn }).first()) as AuthRow | undefined;
    return row ? toState(row) : null;
  }

  async begin(
    nqn: string,
    make: (inForce: DhchapPair | null) => Omit<DhchapPair, 'generation'>,
  ): Promise<HostAuthState> {
    return this.tx(async (trx) => {
      await trx.raw('INSERT INTO host_auth (host_nqn) VALUES (?) ON CONFLICT (host_nqn) DO NOTHING', [nqn]);
      // The row lock orders concurrent begins: the second sees the first's rotation and joins it.
      // It also holds `finish` off, so the pair in force read here stays the one in force.
      const cur = (await trx('host_auth').where({ host_nqn: nqn }).forUpdate().first()) as AuthRow;
      if (cur.step !== 'idle') return toState(cur);
      const inForce = cur.generation > 0 ? await this.pairIn(trx('host_secrets'), nqn, cur.generation) : null;
      return this.stage(trx, nqn, cur.generation + 1, make(inForce));
    });
  }

  /** Stores generation `next` (sealed) and marks it `staged`; inside the caller's transaction. */
  private async stage(
    trx: Knex.Transaction,
    nqn: string,
    next: number,
    pair: Omit<DhchapPair, 'generation'>,
  ): Promise<HostAuthState> {
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
  }

  async advance(nqn: string, next: number, from: RotationStep, to: RotationStep): Promise<boolean> {
    const n = await this.q('host_auth')
      .where({ host_nqn: nqn, next_generation: next, step: from })
      .update({ step: to, last_error: null, updated_at: this.db.fn.now() });
    return n > 0;
  }

  async recordError(nqn: string, message: string): Promise<void> {
    await this.q('host_auth')
      .where({ host_nqn: nqn })
      .update({ last_error: message.slice(0, 1000), updated_at: this.db.fn.now() });
  }

  async finish(nqn: string, next: number, then?: Omit<DhchapPair, 'generation'>): Promise<boolean> {
    return this.tx(async (trx) => {
      const n = await trx('host_auth')
        .where({ host_nqn: nqn, next_generation: next, step: 'confirmed' })
        .update({ generation: next, next_generation: null, step: 'idle', last_error: null, updated_at: trx.fn.now() });
      if (n === 0) return false;
      await trx('host_secrets')
        .where({ host_nqn: nqn })
        .andWhere('generation', '<', next)
        .whereNull('retired_at')
        .update({ host_secret: null, ctrl_secret: null, retired_at: trx.fn.now() });
      // In the same transaction: a crash between the two cannot leave a rotation half done and idle.
      if (then) await this.stage(trx, nqn, next + 1, then);
      return true;
    });
  }

  async pair(nqn: string, generation: number): Promise<DhchapPair | null> {
    return this.pairIn(this.q('host_secrets'), nqn, generation);
  }

  /** One generation's pair, read with `q` (a query on host_secrets: this store's, or a transaction's). */
  private async pairIn(q: Knex.QueryBuilder, nqn: string, generation: number): Promise<DhchapPair | null> {
    const row = (await q.where({ host_nqn: nqn, generation }).whereNull('retired_at').first()) as
      | { host_secret: Buffer; ctrl_secret: Buffer }
      | undefined;
    if (!row) return null;
    return this.open(nqn, generation, row);
  }

  /**
   * Opens one generation's pair. A ciphertext this replica's key cannot open (another
   * PORTALIS_SECRETS_KEY than the one that sealed it, or a damaged row) is a typed error naming
   * the host and generation, never the bytes: the rotation answers 503 `secrets_unreadable`
   * instead of a 500, and delivery leaves the secrets out (secretsForAgent).
   */
  private open(nqn: string, generation: number, row: { host_secret: Buffer; ctrl_secret: Buffer }): DhchapPair {
    try {
      return {
        generation,
        hostSecret: this.box.open(row.host_secret, context(nqn, generation, 'host')),
        ctrlSecret: this.box.open(row.ctrl_secret, context(nqn, generation, 'ctrl')),
      };
    } catch (e) {
      throw new DriverError(
        'secrets_unreadable',
        `host ${nqn}: secret generation ${generation} does not open with this replica's ` +
          'PORTALIS_SECRETS_KEY (another key sealed it, or the row is damaged)',
        { cause: e },
      );
    }
  }

  async delivery(nqn: string): Promise<{ current: DhchapPair; previous: DhchapPair | null } | null> {
    // The state and the generations it names, in one statement (one snapshot: a rotation moving
    // meanwhile cannot pair a new state with an old set of rows).
    const { rows } = (await this.raw(
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
    const open = (r: (typeof rows)[number]): DhchapPair => this.open(nqn, r.generation, r);
    const current = rows.find((r) => r.is_current);
    const previous = rows.find((r) => !r.is_current);
    return current ? { current: open(current), previous: previous ? open(previous) : null } : null;
  }

  async pathsOnGeneration(nqn: string, generation: number): Promise<boolean> {
    // Only live controllers count: a path that is down comes back through a new connect with the
    // newest secret the agent holds (the agent replaces a controller refused on a retired secret,
    // owned.ts; a device without a live path holds the rotation earlier, withoutLivePath). A path
    // without `auth_generation` (an agent older than in-band authentication, or a controller that
    // did not authenticate) holds the rotation.
    const { rows } = (await this.raw(
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

  async withoutLivePath(nqn: string): Promise<string | null> {
    const { rows } = (await this.raw(
      `SELECT a.id FROM attachments a
        WHERE a.host_nqn = :nqn
          AND a.status IN ('attaching', 'attached', 'detaching')
          AND jsonb_typeof(a.paths) = 'array' AND jsonb_array_length(a.paths) > 0
          AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(a.paths) p WHERE p->>'state' = 'live')
        ORDER BY a.id LIMIT 1`,
      { nqn },
    )) as { rows: { id: string }[] };
    return rows[0]?.id ?? null;
  }

  async notifyAgent(nqn: string): Promise<void> {
    // The host's version moves and its polls wake in every process (migration 20261121010000).
    await this.raw('SELECT portalis_bump_host(?, ?)', [nqn, nqn]);
  }

  async unfinished(): Promise<string[]> {
    const rows = (await this.q('host_auth').whereNot({ step: 'idle' }).orderBy('host_nqn')) as AuthRow[];
    return rows.map((r) => r.host_nqn);
  }
}
