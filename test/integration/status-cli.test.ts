import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Knex } from 'knex';
import knexFactory from 'knex';
import { runStatus } from '../../src/cli/status.ts';
import { startCli } from '../support/cli.ts';
import { healthClient } from '../support/health.ts';
import { startTarget, type Target } from '../support/target.ts';

/** `portalis status` against a running service on a real port, with real agent reports. */
describe('portalis status', () => {
  let t: Target;
  let h: ReturnType<typeof healthClient>;
  let server: Server;
  let url: string;
  let sql: Knex;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'portalis-status-'));

  before(async () => {
    t = await startTarget();
    h = healthClient(t);
    sql = knexFactory({ client: 'pg', connection: t.databaseUrl!, pool: { min: 0, max: 1 } });
    server = await new Promise<Server>((resolve) => {
      const s = t.app!.listen(0, '127.0.0.1', () => resolve(s));
    });
    const addr = server.address() as { port: number };
    url = `http://127.0.0.1:${addr.port}`;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await sql?.destroy();
    await t?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  async function status(args: string[], env: Record<string, string> = {}, tty = false) {
    let out = '';
    let err = '';
    const code = await runStatus(
      args,
      { PORTALIS_URL: url, PORTALIS_TOKEN: t.token, ...env },
      { stdout: { write: (s: string) => (out += s), isTTY: tty }, stderr: { write: (s: string) => (err += s) } },
      tmp,
    );
    return { code, out, err };
  }

  it('exits 0 when every cell of the selection is optimal, 1 degraded or pending, 2 failed or unknown', async () => {
    const a = await h.newHost();
    const ok = await h.attach(a);
    await h.report(a.token, ok.attachmentId, h.body('optimal'));
    const only = (vol: string) => ['--volume', vol];
    const r0 = await status(only(ok.volumeId));
    assert.equal(r0.code, 0, r0.out + r0.err);
    assert.match(r0.out, /1 attachments on 1 hosts, 1 volumes: 1 optimal, 0 degraded, 0 failed, 0 unknown, 0 pending/);
    assert.match(r0.out, new RegExp(`${ok.volumeId}\\s+${a.name}\\s+optimal\\s+3/3\\s+native\\s+/dev/nvme0n1`));
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the ANSI escape is what the test looks for
    assert.doesNotMatch(r0.out, /\x1b\[/, 'plain when piped');

    const deg = await h.attach(a);
    await h.report(a.token, deg.attachmentId, h.body('degraded', 2, 3));
    assert.equal((await status(only(deg.volumeId))).code, 1);
    const pend = await h.attach(a);
    assert.equal((await status(only(pend.volumeId))).code, 1, 'pending is not yet optimal');
    const fail = await h.attach(a);
    await h.report(a.token, fail.attachmentId, h.body('failed', 0, 3, { device_path: null }));
    assert.equal((await status(only(fail.volumeId))).code, 2);
    const unk = await h.attach(a);
    await h.report(a.token, unk.attachmentId, h.body('optimal'));
    await sql('attachments')
      .where({ id: unk.attachmentId })
      .update({ reported_at: sql.raw("now() - interval '10 minutes'") });
    const ru = await status(only(unk.volumeId));
    assert.equal(ru.code, 2);
    assert.match(ru.out, /unknown/);

    // The host filter covers all five; the worst decides.
    const all = await status(['--host', a.nqn]);
    assert.equal(all.code, 2);
    assert.match(all.out, /5 attachments on 1 hosts, 5 volumes: 1 optimal, 1 degraded, 1 failed, 1 unknown, 1 pending/);
    const degradedOnly = await status(['--host', a.nqn, '--health', 'degraded']);
    assert.equal(degradedOnly.code, 1);
    assert.match(degradedOnly.out, new RegExp(deg.volumeId));
    assert.doesNotMatch(degradedOnly.out, new RegExp(fail.volumeId));
  });

  it('prints JSON with --json, colours on a terminal, and takes the token from the data directory', async () => {
    const a = await h.newHost();
    const v = await h.attach(a);
    await h.report(a.token, v.attachmentId, h.body('degraded', 1, 3));
    const j = await status(['--json', '--volume', v.volumeId]);
    assert.equal(j.code, 1);
    const m = JSON.parse(j.out);
    assert.equal(m.volumes[0].hosts[0].health, 'degraded');
    assert.equal(m.volumes[0].hosts[0].paths_live, 1);

    const tty = await status(['--volume', v.volumeId], {}, true);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the ANSI escape is what the test looks for
    assert.match(tty.out, /\x1b\[33mdegraded\x1b\[0m/, 'degraded in yellow on a terminal');
    const noColor = (await status(['--volume', v.volumeId], { NO_COLOR: '1' }, true)).out;
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the ANSI escape is what the test looks for
    assert.doesNotMatch(noColor, /\x1b\[/);

    mkdirSync(path.join(tmp, '.portalis'), { recursive: true });
    writeFileSync(path.join(tmp, '.portalis', 'admin-token'), `${t.token}\n`, { mode: 0o600 });
    let out = '';
    const code = await runStatus(
      ['--volume', v.volumeId],
      { PORTALIS_URL: url },
      { stdout: { write: (s: string) => (out += s) }, stderr: { write: () => 0 } },
      tmp,
    );
    assert.equal(code, 1);
    assert.match(out, /degraded/);
  });

  it('exits 3 with a clear message when it cannot ask: bad token, no service, bad arguments', async () => {
    const bad = await status([], { PORTALIS_TOKEN: 'not-the-admin-token-xxxx' });
    assert.equal(bad.code, 3);
    assert.match(bad.err, /401: unauthorized/);
    const down = await status([], { PORTALIS_URL: 'http://127.0.0.1:9' });
    assert.equal(down.code, 3);
    assert.match(down.err, /cannot reach the service at http:\/\/127\.0\.0\.1:9/);
    const arg = await status(['--health', 'sick']);
    assert.equal(arg.code, 3);
    assert.match(arg.err, /"sick" is not one of/);
    const none = await runStatus(
      [],
      { PORTALIS_URL: url },
      { stdout: { write: () => 0 }, stderr: { write: () => 0 } },
      path.join(tmp, 'nowhere'),
    );
    assert.equal(none, 3);
  });

  it('runs as `portalis status` from the command line with the exit code of the matrix', async () => {
    const a = await h.newHost();
    const v = await h.attach(a);
    await h.report(a.token, v.attachmentId, h.body('failed', 0, 3, { device_path: null }));
    const p = startCli(['status', '--volume', v.volumeId], {
      ...process.env,
      PORTALIS_URL: url,
      PORTALIS_TOKEN: t.token,
    });
    assert.equal(await p.exit(), 2);
    assert.match(p.output(), /failed/);
  });
});
