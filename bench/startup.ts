/**
 * Start-up: how long a `portalis` command takes against `node -e 0` (node itself), and
 * `portalis serve` from spawn to its "listening" line with an external PostgreSQL.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, type Benchmark, type Figure, median, ROOT, scratchDatabase, startProgram, TOKEN } from './support.ts';

function wallMs(args: string[], env: Record<string, string> = {}): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env } });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return ms;
}

export const startup: Benchmark = {
  name: 'startup',
  description: 'CLI commands and `portalis serve` to listening, against `node -e 0`',
  async run(ctx) {
    const rounds = ctx.quick ? 2 : 7;
    // A host root with only what connector-properties reads: the host NQN and host ID files.
    const root = mkdtempSync(path.join(os.tmpdir(), 'portalis-bench-root-'));
    for (const d of ['etc/nvme', 'sys', 'dev', 'proc']) mkdirSync(path.join(root, d), { recursive: true });
    writeFileSync(
      path.join(root, 'etc/nvme/hostnqn'),
      'nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3ccb6a4\n',
    );
    const agentEnv = {
      PORTALIS_AGENT_SYS_ROOT: path.join(root, 'sys'),
      PORTALIS_AGENT_DEV_ROOT: path.join(root, 'dev'),
      PORTALIS_AGENT_ETC_ROOT: path.join(root, 'etc'),
      PORTALIS_AGENT_PROC_ROOT: path.join(root, 'proc'),
    };
    const node: number[] = [];
    const help: number[] = [];
    const props: number[] = [];
    // Alternating rounds, so that a burst of load on the machine hits every command alike.
    for (let i = 0; i < rounds; i++) {
      node.push(wallMs(['-e', '0']));
      help.push(wallMs([BIN, 'help']));
      props.push(wallMs([BIN, 'agent', 'connector-properties'], agentEnv));
    }
    rmSync(root, { recursive: true, force: true });

    const db = await scratchDatabase(ctx.databaseUrl, 'startup');
    const serve: number[] = [];
    try {
      for (let i = 0; i < Math.min(rounds, 5); i++) {
        // Round 0 also migrates the new database; the figure is the median of all rounds.
        const p = startProgram(
          ['serve'],
          {
            DATABASE_URL: db.url,
            PORTALIS_PORT: '0',
            PORTALIS_ADMIN_TOKEN: TOKEN,
            PORTALIS_BACKEND: 'lightos',
            // Start-up does not call the backend: a closed port is enough.
            PORTALIS_LIGHTOS_ENDPOINTS: 'http://127.0.0.1:9',
            PORTALIS_LOG_LEVEL: 'warn',
          },
          /listening on http/,
        );
        serve.push((await p.ready).ms);
        await p.stop();
      }
    } finally {
      await db.drop();
    }
    const base = { name: 'node -e 0', value: median(node) };
    ctx.log(`node -e 0 rounds: ${node.map((x) => x.toFixed(0)).join(' ')} ms`);
    const figures: Figure[] = [
      { name: 'portalis help', value: median(help), unit: 'ms', baseline: base, target: '≤ node + 150 ms' },
      {
        name: 'portalis agent connector-properties',
        value: median(props),
        unit: 'ms',
        baseline: base,
        target: '≤ node + 150 ms',
      },
      { name: 'portalis serve to listening', value: median(serve), unit: 'ms', baseline: base, target: '< 1000 ms' },
    ];
    return figures;
  },
};
