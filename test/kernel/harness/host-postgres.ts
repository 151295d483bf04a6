/**
 * A PostgreSQL on the host for a guest that runs the driver service: the embedded PostgreSQL
 * the service itself uses (src/store/embedded.ts), started natively (~0.5 s) instead of in the
 * emulated guest (initdb and start ~8 s there). It listens on the host's 127.0.0.1 only; QEMU's
 * user network turns the guest's connections to 10.0.2.2 into connections from the host's
 * loopback, so the guest reaches it at 10.0.2.2:<port> and nothing else can.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '../../../src/store/embedded.ts';

export const GUEST_HOST_ADDRESS = '10.0.2.2';

export interface HostPostgres {
  /** The database URL as the guest must use it (host 10.0.2.2). */
  guestUrl: string;
  /** Seen from the host. */
  hostUrl: string;
  stop(): Promise<void>;
}

export async function startHostPostgres(): Promise<HostPostgres> {
  // As root PostgreSQL runs as the `postgres` user, which must traverse every parent.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'portalis-kernel-pg-'));
  await chmod(dir, 0o755);
  try {
    const db = await startEmbeddedPostgres({ dir: path.join(dir, 'pg'), persistent: false });
    const guest = new URL(db.url);
    guest.hostname = GUEST_HOST_ADDRESS;
    return {
      guestUrl: guest.toString(),
      hostUrl: db.url,
      async stop() {
        try {
          await db.stop();
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
