import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { HostChangeFeed } from '../driver/ports.ts';
import type { Logger } from '../shared/logger.ts';
import { silentLogger } from '../shared/logger.ts';

/** The channel the hosts migration's triggers notify; the payload is the host NQN. */
export const HOST_CHANNEL = 'portalis_host_changed';
const CHANNEL = HOST_CHANNEL;

/**
 * LISTENs on the channel the database triggers notify (see the hosts migration), on one
 * dedicated connection per service process, and wakes the long-polls waiting for that host.
 * If the connection drops, every waiter is woken (it re-reads the version, so a spurious wake
 * costs one query) and the listener reconnects.
 */
export class PgHostChangeFeed implements HostChangeFeed {
  private readonly events = new EventEmitter();
  private client: pg.Client | null = null;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly url: string,
    private readonly log: Logger = silentLogger,
    private readonly reconnectDelayMs = 1000,
  ) {
    this.events.setMaxListeners(0);
  }

  async start(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url });
    client.on('notification', (n) => {
      if (n.channel === CHANNEL && n.payload) this.events.emit(n.payload);
    });
    client.on('error', (e) => this.lost(client, e));
    client.on('end', () => this.lost(client, new Error('connection ended')));
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    this.client = client;
  }

  private lost(client: pg.Client, e: Error): void {
    if (this.client !== client || this.closed) return;
    this.client = null;
    this.log.warn({ err: e.message }, 'host change feed lost its connection; reconnecting');
    for (const name of this.events.eventNames()) this.events.emit(name);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    this.reconnectTimer = setTimeout(() => {
      this.start().catch((err) => {
        this.log.warn({ err: (err as Error).message }, 'host change feed could not reconnect; retrying');
        this.scheduleReconnect();
      });
    }, this.reconnectDelayMs);
  }

  subscribe(nqn: string): { changed: Promise<void>; cancel(): void } {
    let listener!: () => void;
    const changed = new Promise<void>((resolve) => {
      listener = () => resolve();
      this.events.once(nqn, listener);
    });
    return { changed, cancel: () => this.events.off(nqn, listener) };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }
}
