import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cleanEnv, type CliProcess, startCli } from '../support/cli.ts';
import { createTestDatabase } from '../support/db.ts';
import { rssBytes, servedConnections } from '../support/proc.ts';
import { waitUntil } from '../support/sim-client.ts';

/**
 * Clients that pipeline requests and never read the answers, against `portalis serve` as its own
 * process (its memory is what is measured, from /proc): 100 sockets without a token, each sending
 * 200 `GET /openapi.json` at once and reading nothing. The service must not build and hold answers
 * in proportion: it grows by at most 100 MB (it took 479 MB before answers were bounded per
 * connection) and `/healthz` answers within 1 s all along. A client that pipelines a few requests
 * and reads its answers still gets every one.
 */
const SOCKETS = 100;
const PIPELINED = 200;
const GROWTH_LIMIT = 100 * 1024 * 1024;
const HEALTHZ_MS = 1000;

describe('pipelined requests nobody reads', () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'portalis-pipelining-'));
  let service: CliProcess;
  let url: string;
  let drop: () => Promise<void>;

  before(async () => {
    const database = await createTestDatabase();
    await database.db.destroy();
    drop = database.drop;
    service = startCli(
      ['serve'],
      cleanEnv({
        DATABASE_URL: database.url,
        PORTALIS_DATA_DIR: dataDir,
        PORTALIS_PORT: '0',
        PORTALIS_ADMIN_TOKEN: `pipelining-${randomUUID()}`,
        PORTALIS_LOG_LEVEL: 'warn',
      }),
    );
    url = (await service.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
  });
  after(async () => {
    await service?.stop();
    await drop?.();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** `/healthz`'s answer time in ms. */
  async function healthz(): Promise<number> {
    const start = performance.now();
    const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    return performance.now() - start;
  }

  it('100 sockets x 200 unread GET /openapi.json grow the service by at most 100 MB; /healthz answers within 1 s', async (t) => {
    const pid = service.child.pid!;
    const port = Number(new URL(url).port);
    // Warm: the first answers compile code and fill caches that are not the flood's doing.
    for (let i = 0; i < 20; i++) {
      assert.equal((await fetch(`${url}/openapi.json`).then((r) => (r.arrayBuffer(), r))).status, 200);
      await healthz();
    }
    const baseline = rssBytes(pid);
    const request = 'GET /openapi.json HTTP/1.1\r\nHost: portalis\r\n\r\n'.repeat(PIPELINED);
    const sockets = await Promise.all(
      Array.from(
        { length: SOCKETS },
        () =>
          new Promise<net.Socket>((resolve, reject) => {
            const s = net.connect(port, '127.0.0.1', () => s.write(request, (e) => (e ? reject(e) : resolve(s))));
            // Never read: the answers pile up in the kernel's buffers and then in the service's.
            s.pause();
            s.on('error', () => undefined);
          }),
      ),
    );
    let peak = baseline;
    let slowest = 0;
    try {
      // Until the service has read every byte sent (or closed the connection): from then on it has
      // parsed every request it ever will; then a few more rounds while the handlers finish.
      let rounds = 0;
      await waitUntil(
        async () => {
          slowest = Math.max(slowest, await healthz());
          peak = Math.max(peak, rssBytes(pid));
          if (servedConnections(port).unread === 0) rounds++;
          return rounds >= 10;
        },
        { timeoutMs: 60_000, intervalMs: 50, what: 'the service to read every pipelined request' },
      );
    } finally {
      for (const s of sockets) s.destroy();
    }
    const growth = peak - baseline;
    t.diagnostic(
      `rss ${(baseline / 2 ** 20).toFixed(0)} -> peak ${(peak / 2 ** 20).toFixed(0)} MB ` +
        `(+${(growth / 2 ** 20).toFixed(1)} MB), slowest /healthz ${slowest.toFixed(0)} ms`,
    );
    assert.ok(growth <= GROWTH_LIMIT, `the service grew by ${(growth / 2 ** 20).toFixed(0)} MB`);
    assert.ok(slowest < HEALTHZ_MS, `/healthz took ${Math.round(slowest)} ms under the flood`);
  });

  it('a client that pipelines a few requests and reads the answers gets every one', async () => {
    const port = Number(new URL(url).port);
    const one = 'GET /healthz HTTP/1.1\r\nHost: portalis\r\n\r\n';
    // The last one asks the service to close, so that the end of the answers is the end of the stream.
    const request = one.repeat(15) + one.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n');
    const answers = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(request));
      let text = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (text += d));
      s.on('end', () => resolve(text));
      s.on('error', reject);
      s.setTimeout(10_000, () => s.destroy(new Error(`no end of the answers within 10 s: ${text}`)));
    });
    assert.equal(answers.match(/HTTP\/1\.1 200 /g)?.length, 16, answers);
  });
});
