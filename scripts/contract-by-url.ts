/**
 * Runs the contract suite (test/contract) against a service started from the CLI, the way an
 * operator starts it: `portalis sim` on its own port (requiring a JWT), `portalis serve` with the
 * `lightos` backend pointed at it (a dead API endpoint listed first, so the adapter must fail
 * over, and the JWT), then `npm run test:contract` with the URL and token.
 *
 * With PORTALIS_TEST_URL already set (a running stack, e.g. docker compose), use
 * `npm run test:contract` directly instead.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanEnv, ROOT, startCli } from '../test/support/cli.ts';

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'portalis-contract-'));
chmodSync(dataDir, 0o755);
const token = randomBytes(24).toString('base64url');
const jwt = `jwt-${randomBytes(12).toString('hex')}`;
const sim = startCli(['sim'], cleanEnv({ PORTALIS_SIM_PORT: '0', PORTALIS_SIM_JWT: jwt }));
let serve: ReturnType<typeof startCli> | undefined;
let code = 1;
try {
  const [, simUrl] = await sim.waitFor(/listening on (http:\/\/\S+?) /);
  serve = startCli(
    ['serve'],
    cleanEnv({
      PORTALIS_PORT: '0',
      PORTALIS_DATA_DIR: dataDir,
      PORTALIS_ADMIN_TOKEN: token,
      PORTALIS_BACKEND: 'lightos',
      // Port 9 (discard) on loopback refuses connections: the adapter must move on to the sim.
      PORTALIS_LIGHTOS_ENDPOINTS: `http://127.0.0.1:9,${simUrl}`,
      PORTALIS_LIGHTOS_JWT: jwt,
      PORTALIS_LIGHTOS_POLL_INTERVAL_MS: '100',
      PORTALIS_LOG_LEVEL: 'warn',
      ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {}),
    }),
  );
  const [, url] = await serve.waitFor(/listening on (http:\/\/\S+)/);
  console.log(`# contract suite against ${url} (simulator ${simUrl})`);
  const child = spawn(process.execPath, [path.join(ROOT, 'scripts', 'run-tests.mjs'), 'test/contract'], {
    cwd: ROOT,
    stdio: 'inherit',
    env: {
      ...process.env,
      PORTALIS_TEST_URL: url!,
      PORTALIS_TEST_TOKEN: token,
      PORTALIS_TEST_SIM_URL: simUrl!,
      PORTALIS_TEST_SIM_JWT: jwt,
    },
  });
  code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
} catch (e) {
  console.error(String(e));
} finally {
  await serve?.stop();
  await sim.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(code);
