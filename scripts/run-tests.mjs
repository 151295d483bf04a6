#!/usr/bin/env node
/**
 * `npm test`: runs every *.test.ts under src/ and test/ (except the real-kernel suite, which
 * has its own command) with node's built-in test runner.
 *
 * Tests need a real PostgreSQL. With DATABASE_URL set, they use it (each test file creates
 * and drops its own database in it); otherwise this script starts one embedded PostgreSQL
 * for the whole run and points DATABASE_URL at it.
 *
 * Usage: node scripts/run-tests.mjs [file-or-dir ...] [-- node --test options]
 */
import { spawn, spawnSync } from 'node:child_process';
import { lstatSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const targets = dash >= 0 ? argv.slice(0, dash) : argv;
const extra = dash >= 0 ? argv.slice(dash + 1) : [];

function collect(p, out) {
  // lstat: fixture trees hold sysfs-shaped symlink loops, never to be followed.
  const st = lstatSync(p);
  if (st.isDirectory()) {
    for (const e of readdirSync(p)) {
      if (e === 'node_modules' || e.startsWith('.')) continue;
      const full = path.join(p, e);
      // The kernel suite boots a VM; it runs through `npm run test:kernel`.
      if (full === path.join(root, 'test', 'kernel')) continue;
      if (full === path.join(root, 'test', 'fixtures')) continue;
      collect(full, out);
    }
  } else if (p.endsWith('.test.ts')) out.push(p);
}

const files = [];
for (const t of targets.length > 0 ? targets : ['src', 'test']) collect(path.resolve(root, t), files);
files.sort();
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}

// The tests that run the CLI as a process run `bin/portalis.mjs`, that is the compiled build:
// rebuild it (incremental, a few seconds when nothing changed) so they test the sources as they are.
const build = spawnSync(process.execPath, [path.join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) {
  console.error('the build (npm run build) failed; the CLI tests would run a stale dist/');
  process.exit(1);
}

let stopDb = async () => {};
const env = { ...process.env };
// By URL (PORTALIS_TEST_URL) the contract suite talks to a running service and needs no database.
if (!env.DATABASE_URL && !env.PORTALIS_TEST_URL) {
  const { startEmbeddedPostgres } = await import('./embedded-db.mjs');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portalis-test-pg-'));
  const db = await startEmbeddedPostgres(dir);
  env.DATABASE_URL = db.url;
  stopDb = async () => {
    await db.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  console.log(`# embedded PostgreSQL for this run: ${db.url.replace(/:[^:@]*@/, ':***@')}`);
}

const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-timeout=120000', ...extra, ...files], {
  cwd: root,
  env,
  stdio: 'inherit',
});
const code = await new Promise((resolve) => child.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0))));
await stopDb();
process.exit(code);
