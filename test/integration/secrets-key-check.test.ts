import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { startService } from '../../src/server/service.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { createTestDatabase } from '../support/db.ts';

/**
 * Every replica of a fleet must hold the same PORTALIS_SECRETS_KEY: one with another key would
 * seal secrets its peers cannot open. The first replica with a key seals a check value; a
 * replica whose key does not open it refuses to start, naming the setting.
 */
describe('secrets key check at start-up', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => database?.drop());

  const config = (key: Buffer) =>
    loadConfig({
      DATABASE_URL: database.url,
      PORTALIS_PORT: '0',
      PORTALIS_HOST: '127.0.0.1',
      PORTALIS_ADMIN_TOKEN: 'key-check-admin-token-0123456789',
      PORTALIS_INBAND_AUTH: 'required',
      PORTALIS_SECRETS_KEY: key.toString('base64'),
    });

  it('the same key starts again; another key is refused before the service listens', async () => {
    await database.db.raw('TRUNCATE secrets_key_check, host_secrets, host_auth');
    const key = randomBytes(32);
    const first = await startService(config(key), silentLogger);
    const second = await startService(config(key), silentLogger);
    await Promise.all([first.close(), second.close()]);
    await assert.rejects(
      startService(config(randomBytes(32)), silentLogger),
      /PORTALIS_SECRETS_KEY: this key does not open the secrets this database holds/,
    );
    const again = await startService(config(key), silentLogger);
    await again.close();
  });

  it('on the first start with a check value, a key that does not open the stored secrets is refused', async () => {
    // Secrets sealed by a release without the check value: the table is empty, the rows are not.
    await database.db.raw('TRUNCATE secrets_key_check, host_secrets, host_auth');
    const key = randomBytes(32);
    const svc = await startService(config(key), silentLogger);
    try {
      const nqn = 'nqn.2014-08.org.nvmexpress:uuid:0b3d7f6e-2f0e-4a51-9a0e-5f3c2a1b9c77';
      const admin = { authorization: 'Bearer key-check-admin-token-0123456789', 'content-type': 'application/json' };
      const r = await fetch(`${svc.url}/v1/hosts`, { method: 'POST', headers: admin, body: JSON.stringify({ nqn }) });
      assert.equal(r.status, 201);
    } finally {
      await svc.close();
    }
    await database.db.raw('DELETE FROM secrets_key_check');
    await assert.rejects(
      startService(config(randomBytes(32)), silentLogger),
      /PORTALIS_SECRETS_KEY: this key does not open/,
    );
    const right = await startService(config(key), silentLogger);
    await right.close();
  });
});
