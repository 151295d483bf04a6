import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { FakeHost } from '../../src/agent/host/testing/fake-host.ts';
import { NVME_CONFIG_JSON } from '../../src/agent/nvme-config.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { poll } from '../../src/shared/poll.ts';
import { type AgentStack, startAgentStack } from '../support/agent-stack.ts';

/**
 * In-band authentication from the service to the agent, without a kernel: the service with
 * PORTALIS_INBAND_AUTH=required, the simulator whose trusted-host secrets the fake target enforces,
 * and the real agent daemon over HTTP. The agent connects through the config.json it keeps, reports
 * the generation per path, and a rotation through the API moves every controller and finishes.
 */
describe('in-band authentication, service to agent', () => {
  const host = new FakeHost({ clock: systemClock, hostname: 'compute-auth' });
  let stack: AgentStack;
  before(async () => {
    stack = await startAgentStack(host, {
      untilDeadlineMs: 15_000,
      env: { PORTALIS_INBAND_AUTH: 'required', PORTALIS_SECRETS_KEY: randomBytes(32).toString('base64') },
    });
  });
  after(async () => {
    await stack?.close();
  });

  it('connects with the secret the target requires, and a rotation moves every path to the new one', async () => {
    const { t, admin, until } = stack;
    const conn = await stack.startAgent({ recheckIntervalMs: 500, pollWaitSeconds: 5 });
    const required = () => host.fabric.hostKeys.get(conn.nqn);
    assert.ok(required(), 'registering the host set its secret at the backend');
    const { id } = await stack.attach(conn);
    const gens = (a: any): unknown[] => a.agent?.paths?.map((p: { auth_generation?: number }) => p.auth_generation);
    const first = await until(
      id,
      (a) => a.agent?.state === 'connected' && gens(a).length === 3 && gens(a).every((g) => g === 1),
      'connected, every path at generation 1',
    );
    assert.equal(first.agent.paths.length, 3);
    const config = () => JSON.parse(host.fs.read(NVME_CONFIG_JSON)!) as { hostnqn: string; dhchap_key: string }[];
    assert.equal(config().find((h) => h.hostnqn === conn.nqn)?.dhchap_key, required());
    const firstCtrl = host.fs.read(`/sys/class/nvme/${host.controllers()[0]}/dhchap_ctrl_secret`)?.trim();

    const nqn = encodeURIComponent(conn.nqn);
    const rotate = () => t.http.post(`/v1/hosts/${nqn}/secrets/rotate?from_generation=1`).set(admin());
    assert.equal((await rotate()).status, 202);
    // Repeated as an operator would (from_generation keeps it one rotation) until it is done.
    const done = await poll(
      async () => {
        const r = await rotate();
        // Two generations: the host secret moves in 2, the controller secret in 3.
        return r.body.generation === 3 && r.body.step === 'idle'
          ? { done: true as const, value: r.body }
          : { done: false as const, last: r.body };
      },
      { deadlineMs: 15_000, intervalMs: 200 },
    );
    assert.ok(done.done, `rotation finished; last: ${JSON.stringify(done.done ? null : done.last)}`);
    const moved = await t.http.get(`/v1/attachments/${id}`).set(admin());
    assert.deepEqual(gens(moved.body), [3, 3, 3]);
    assert.equal(config().find((h) => h.hostnqn === conn.nqn)?.dhchap_key, required());
    for (const c of host.controllers())
      assert.equal(host.fs.read(`/sys/class/nvme/${c}/dhchap_secret`)?.trim(), required(), `${c} re-authenticated`);
    const ctrlKeys = new Set(host.controllers().map((c) => host.fs.read(`/sys/class/nvme/${c}/dhchap_ctrl_secret`)));
    assert.equal(ctrlKeys.size, 1, 'every controller on one controller secret');
    assert.notEqual([...ctrlKeys][0]?.trim(), firstCtrl, 'the controller secret moved too');
    assert.equal(host.controllers().length, 3, 'no path was dropped');
    for (const c of host.commands)
      assert.ok(!c.args.some((a) => a.includes('DHHC-1')), `no secret on a command line: ${c.cmd} ${c.args[0]}`);
  });
});
