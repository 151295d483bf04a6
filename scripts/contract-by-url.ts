/**
 * Runs the contract suite (test/contract) against a service started from the CLI, the way an
 * operator starts it: `portalis sim` on its own port, `portalis serve` pointed at it through
 * PORTALIS_SIM_URL, then `npm run test:contract` with the URL and token.
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
const sim = startCli(['sim'], cleanEnv({ PORTALIS_SIM_PORT: '0' }));
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
      PORTALIS_SIM_URL: simUrl!,
      PORTALIS_LOG_LEVEL: 'warn',
      ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {}),
    }),
  );
  const [, url] = await serve.waitFor(/listening on (http:\/\/\S+)/);
  console.log(`# contract suite against ${url} (simulator ${simUrl})`);
  const child = spawn(process.execPath, [path.join(ROOT, 'scripts', 'run-tests.mjs'), 'test/contract'], {
    cwd: ROOT,
    stdio: 'inherit',
    env: { ...process.env, PORTALIS_TEST_URL: url!, PORTALIS_TEST_TOKEN: token, PORTALIS_TEST_SIM_URL: simUrl! },
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
