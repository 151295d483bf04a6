import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cleanEnv, type CliProcess, startCli } from '../support/cli.ts';
import { createTestDatabase } from '../support/db.ts';
import { MAX_PIPELINED } from '../../src/server/http-server.ts';
import { floodUnread, warm } from '../support/flood.ts';

/**
 * Clients that pipeline requests and never read the answers, against `portalis serve` as its own
 * process (its memory is what is measured, from /proc): 100 sockets without a token, each sending
 * 200 `GET /openapi.json` at once and reading nothing. The service must not build and hold answers
 * in proportion: it grows by at most 100 MB (it took 479 MB before answers were bounded per
 * connection) and `/healthz` keeps answering. `/healthz`'s target is 1 s, measured by
 * `npm run bench -- pipelining` (35-340 ms alone); here it gets a deadline of 5 s, since inside the
 * whole suite on 2 loaded cores it took 1.2-1.3 s. A client that pipelines as many requests as a
 * connection may have unanswered and reads its answers still gets every one.
 */
const SOCKETS = 100;
const PIPELINED = 200;
const GROWTH_LIMIT = 100 * 1024 * 1024;
/** A deadline against a service that stops answering, not the 1 s target (see above). */
const HEALTHZ_MS = 5000;

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

  it('100 sockets x 200 unread GET /openapi.json grow the service by at most 100 MB; /healthz keeps answering', async (t) => {
    await warm(url, ['/openapi.json', '/healthz']);
    const f = await floodUnread(url, service.child.pid!, {
      sockets: SOCKETS,
      pipelined: PIPELINED,
      request: 'GET /openapi.json HTTP/1.1\r\nHost: portalis\r\n\r\n',
    });
    const mb = (b: number) => (b / 2 ** 20).toFixed(1);
    t.diagnostic(`rss ${mb(f.baseline)} -> peak ${mb(f.peak)} MB, slowest /healthz ${f.slowestHealthz.toFixed(0)} ms`);
    assert.ok(f.peak - f.baseline <= GROWTH_LIMIT, `the service grew by ${mb(f.peak - f.baseline)} MB`);
    assert.ok(f.slowestHealthz < HEALTHZ_MS, `/healthz took ${Math.round(f.slowestHealthz)} ms under the flood`);
  });

  it('a client that pipelines as many requests as a connection may have unanswered, and reads, gets every answer', async () => {
    const port = Number(new URL(url).port);
    const one = 'GET /healthz HTTP/1.1\r\nHost: portalis\r\n\r\n';
    // The last one asks the service to close, so that the end of the answers is the end of the stream.
    const request = one.repeat(MAX_PIPELINED - 1) + one.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n');
    const answers = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(request));
      let text = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (text += d));
      s.on('end', () => resolve(text));
      s.on('error', reject);
      s.setTimeout(10_000, () => s.destroy(new Error(`no end of the answers within 10 s: ${text}`)));
    });
    assert.equal(answers.match(/HTTP\/1\.1 200 /g)?.length, MAX_PIPELINED, answers);
  });
});
