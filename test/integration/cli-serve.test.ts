import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanEnv, startCli } from '../support/cli.ts';

/**
 * `portalis serve` with nothing configured: embedded PostgreSQL, an in-process 3-node
 * simulator, a generated admin token kept in the data directory. What `npm start` runs.
 */
describe('portalis serve with no configuration', () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'portalis-serve-'));
  // mkdtemp makes it 0700; as root the embedded PostgreSQL runs as `postgres` and must get in.
  chmodSync(dataDir, 0o755);
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  async function serve() {
    // Port 0 only so that the test never collides; everything else is the default.
    const p = startCli(
      ['serve'],
      cleanEnv({ PORTALIS_DATA_DIR: dataDir, PORTALIS_PORT: '0', PORTALIS_LOG_LEVEL: 'warn' }),
    );
    const [, url] = await p.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
    const [, token] = await p.waitFor(/admin token: (\S+)/);
    return { p, url: url!, token: token! };
  }

  it('starts, attaches a volume end to end, and keeps its token across restarts', async () => {
    const first = await serve();
    try {
      assert.match(first.p.output(), /embedded PostgreSQL/);
      assert.match(first.p.output(), /in-process simulator \(3 nodes/);
      assert.equal(statSync(path.join(dataDir, 'admin-token')).mode & 0o777, 0o600);
      const h = { authorization: `Bearer ${first.token}`, 'content-type': 'application/json' };
      const id = randomUUID();
      const created = await fetch(`${first.url}/v1/volumes`, {
        method: 'POST',
        headers: h,
        body: JSON.stringify({ id, size_gb: 1 }),
      });
      assert.equal(created.status, 201);
      const conn = {
        nqn: `nqn.2014-08.org.nvmexpress:uuid:${randomUUID()}`,
        host: 'cli-host',
        multipath: true,
        nvme_native_multipath: true,
      };
      const init = await fetch(`${first.url}/v1/volumes/${id}/initialize_connection`, {
        method: 'POST',
        headers: h,
        body: JSON.stringify({ connector: conn }),
      });
      assert.equal(init.status, 200);
      const body = (await init.json()) as { connection_info: { data: { portals: unknown[] } } };
      assert.equal(body.connection_info.data.portals.length, 3);
      assert.equal((await fetch(`${first.url}/readyz`)).status, 200);
    } finally {
      assert.equal(await first.p.stop(), 0);
    }
    const second = await serve();
    try {
      assert.equal(second.token, first.token);
      assert.match(second.p.output(), /kept in/);
      // The database survived the restart too.
      const list = await fetch(`${second.url}/v1/attachments`, {
        headers: { authorization: `Bearer ${second.token}` },
      });
      assert.equal(((await list.json()) as { attachments: unknown[] }).attachments.length, 1);
    } finally {
      await second.p.stop();
    }
  });

  it('refuses bad configuration with a message naming the variable', async () => {
    const p = startCli(['serve'], cleanEnv({ PORTALIS_DATA_DIR: dataDir, PORTALIS_BACKEND: 'nope' }));
    assert.equal(await p.exit(), 2);
    assert.match(p.output(), /invalid configuration: PORTALIS_BACKEND/);
  });
});
