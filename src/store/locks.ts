import type { Knex } from 'knex';
import type pg from 'pg';
import { DriverError } from '../driver/errors.ts';
import type { Store, VolumeLocks } from '../driver/ports.ts';
import { KeyedMutex } from '../shared/keyed-mutex.ts';
import { PgStore } from './pg-store.ts';

/**
 * Per-volume locks that hold across every service process sharing the database:
 * a PostgreSQL session-level advisory lock on a connection reserved for the holder.
 *
 * Session-level (not `pg_advisory_xact_lock`) on purpose: the holder's writes must commit as
 * they happen. An `attaching` row recorded before the backend grant has to survive a crash in
 * the middle of the grant, or a retry could not find and converge the half-done work.
 *
 * Waiters of the same process queue on an in-process mutex first, so 50 concurrent requests
 * for one volume hold one pooled connection, not 50.
 */
/** Closes a pooled connection; knex's pool discards closed connections when it validates them. */
async function destroyConnection(db: Knex, conn: unknown): Promise<void> {
  await (conn as { end(): Promise<void> }).end().catch(() => undefined);
  await (db.client as { releaseConnection(c: unknown): Promise<void> }).releaseConnection(conn).catch(() => undefined);
}

/**
 * Runs `fn` on a pooled connection reserved for it, holding the PostgreSQL session-level advisory
 * lock `key` (hashed with `hashtextextended`) on that connection; unlocks and releases it after.
 * Waiting longer than `timeoutMs` for the lock is a `busy` DriverError with the message `busy`.
 * `timeoutSet`: the connections whose session already has this lock_timeout (SET is sent once per
 * connection, not once per lock); without it, SET is sent every time.
 */
export async function holdAdvisoryLock<T>(
  db: Knex,
  key: string,
  opts: { timeoutMs: number; busy: string; timeoutSet?: WeakSet<object> },
  fn: (conn: unknown) => Promise<T>,
): Promise<T> {
  const client = db.client as {
    acquireConnection(): Promise<unknown>;
    releaseConnection(c: unknown): Promise<void>;
  };
  const conn = await client.acquireConnection();
  // knex's postgres client hands out node-postgres clients. The lock's three statements go to it
  // directly: knex's raw() builds, positions and emits around each one (~0.06 ms of CPU per
  // statement here, docs/performance.md), on every locked operation of every replica.
  const pgConn = conn as pg.ClientBase;
  let locked = false;
  try {
    if (!opts.timeoutSet?.has(conn as object)) {
      await pgConn.query(`SET lock_timeout = ${Math.max(1, Math.floor(opts.timeoutMs))}`);
      opts.timeoutSet?.add(conn as object);
    }
    try {
      await pgConn.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [key]);
    } catch (e) {
      if ((e as { code?: string }).code === '55P03') throw new DriverError('busy', opts.busy, { cause: e });
      throw e;
    }
    locked = true;
    return await fn(conn);
  } finally {
    const unlocked =
      !locked ||
      (await pgConn.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [key]).then(
        () => true,
        () => false,
      ));
    if (unlocked) await client.releaseConnection(conn);
    // A connection that may still hold the lock must not go back to the pool: closing it
    // makes PostgreSQL release every session lock it holds.
    else await destroyConnection(db, conn);
  }
}

export class PgVolumeLocks implements VolumeLocks {
  private readonly local = new KeyedMutex();
  /**
   * The pooled connections whose session already has this lock_timeout: SET is session-wide and
   * stays with the connection, so it is sent once per connection, not once per lock (one database
   * round trip fewer on every locked operation).
   */
  private readonly timeoutSet = new WeakSet<object>();

  constructor(
    private readonly db: Knex,
    private readonly opts: { lockTimeoutMs?: number } = {},
  ) {}

  withVolumeLock<T>(volumeId: string, fn: (store: Store) => Promise<T>): Promise<T> {
    // One volume, one key, whatever the case of the UUID text (PostgreSQL's uuid type ignores it).
    const key = volumeId.toLowerCase();
    // The caller gets fn's outcome as soon as fn is done; the unlock (one more round trip) runs
    // after it, still holding the in-process mutex, so the next caller of this process queues
    // here, and one of another process waits in pg_advisory_lock until the unlock lands. That
    // round trip no longer delays every answer.
    return new Promise<T>((resolve, reject) => {
      void this.local
        .run(key, () => this.withAdvisoryLock(`portalis:volume:${key}`, fn, resolve, reject))
        .catch(reject);
    });
  }

  private async withAdvisoryLock<T>(
    key: string,
    fn: (store: Store) => Promise<T>,
    resolve: (v: T) => void,
    reject: (e: unknown) => void,
  ): Promise<void> {
    const timeoutMs = this.opts.lockTimeoutMs ?? 120_000;
    try {
      await holdAdvisoryLock(
        this.db,
        key,
        {
          timeoutMs,
          busy: `another operation on this volume is still running (waited ${timeoutMs} ms); retry later`,
          timeoutSet: this.timeoutSet,
        },
        // Settled here, before the unlock; a rejection of fn is the caller's, not ours.
        (conn) => fn(new PgStore(this.db, conn)).then(resolve, reject),
      );
    } catch (e) {
      reject(e);
    }
  }
}
