/**
 * The adapter's trusted-host calls: against the simulator over HTTP (the same subset), and
 * against a fake LightOS for what exactly goes on the wire and how refusals are reported.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateDhchapSecret } from '../../driver/dhchap-key.ts';
import { isDriverError } from '../../driver/errors.ts';
import { startSimServer, type SimServer } from '../../sim/server.ts';
import { LightosBackend } from './backend.ts';
import { startFakeLightos } from './testing/fake-lightos.ts';

const pair = (generation: number) => ({
  generation,
  hostSecret: generateDhchapSecret(),
  ctrlSecret: generateDhchapSecret(),
});
const NQN = 'nqn.2014-08.org.nvmexpress:uuid:0f8fad5b-d9cb-469f-a165-70867728950e';
const make = (url: string) =>
  new LightosBackend({ endpoints: [url], pollIntervalMs: 10, requestTimeoutMs: 2000, operationTimeoutMs: 3000 });

describe('LightOS trusted hosts, against the simulator', () => {
  let sim: SimServer;
  before(async () => {
    sim = await startSimServer({ port: 0 });
  });
  after(async () => sim?.close());

  it('creates the trusted host once and sets, then replaces, its one pair (the newest)', async () => {
    const backend = make(sim.url);
    const g1 = pair(1);
    await backend.setTrustedHost(NQN, [g1]);
    assert.deepEqual(sim.trustedHosts.secretsOf(NQN), { hostSecret: g1.hostSecret, targetSecret: g1.ctrlSecret });
    await backend.setTrustedHost(NQN, [g1]);
    const g2 = pair(2);
    await backend.setTrustedHost(NQN, [g2, g1]);
    assert.deepEqual(sim.trustedHosts.secretsOf(NQN), { hostSecret: g2.hostSecret, targetSecret: g2.ctrlSecret });
  });
});

describe('LightOS trusted hosts, on the wire', () => {
  it('POSTs the host, accepts 409 as "exists", PUTs the newest pair only', async () => {
    const fake = await startFakeLightos((r) =>
      r.method === 'POST' ? { status: 409, body: { message: 'exists' } } : { body: {} },
    );
    try {
      const [g2, g1] = [pair(2), pair(1)];
      await make(fake.url).setTrustedHost(NQN, [g2, g1]);
      assert.deepEqual(
        fake.requests.map((r) => [r.method, r.url, r.body]),
        [
          ['POST', '/api/v2/trustedHosts', { hostNqn: NQN }],
          [
            'PUT',
            `/api/v2/trustedHosts/${encodeURIComponent(NQN)}/secrets`,
            { hostSecret: g2.hostSecret, targetSecret: g2.ctrlSecret },
          ],
        ],
      );
    } finally {
      await fake.close();
    }
  });

  it('a refusal that quotes the secret is reported without it', async () => {
    const g1 = pair(1);
    const fake = await startFakeLightos((r) =>
      r.method === 'POST' ? { body: {} } : { status: 400, body: { message: `invalid hostSecret ${g1.hostSecret}` } },
    );
    try {
      await assert.rejects(make(fake.url).setTrustedHost(NQN, [g1]), (e: unknown) => {
        assert.ok(isDriverError(e, 'backend_rejected'), String(e));
        assert.match(e.message, /setTrustedHost\(host nqn\.2014-08/);
        assert.equal(e.message.includes(g1.hostSecret.split(':')[2]!), false, e.message);
        assert.match(e.message, /invalid hostSecret <redacted>/);
        return true;
      });
    } finally {
      await fake.close();
    }
  });

  it('a refusal quoting a secret in any form, in JSON or in text, never passes it on', async () => {
    const g2 = pair(2);
    const g1 = pair(1);
    const forms = [g2, g1].flatMap((p) =>
      [p.hostSecret, p.ctrlSecret].flatMap((text) => {
        const b64 = text.split(':')[2]!;
        const key = Buffer.from(b64, 'base64').subarray(0, 32);
        return [b64, key.toString('base64'), key.toString('hex'), key.toString('hex').toUpperCase()];
      }),
    );
    const bodies: unknown[] = [
      { message: `bad secrets: ${forms.join(' ')}` },
      { error: `bad secrets: ${forms.join(',')}` },
      `<html><body>400 bad request: ${forms.join(' ')}</body></html>`,
      `${g2.hostSecret.split(':')[2]!.slice(0, 20)}`, // text cut short: no exact form to match
    ];
    for (const body of bodies) {
      const fake = await startFakeLightos((r) => (r.method === 'POST' ? { body: {} } : { status: 400, body }));
      try {
        await assert.rejects(make(fake.url).setTrustedHost(NQN, [g2, g1]), (e: unknown) => {
          assert.ok(isDriverError(e, 'backend_rejected'), String(e));
          const seen = JSON.stringify({ message: e.message, cause: String(e.cause ?? '') });
          for (const f of [...forms, g2.hostSecret.split(':')[2]!.slice(0, 20)])
            assert.equal(seen.includes(f), false, `${f} in ${seen}`);
          return true;
        });
      } finally {
        await fake.close();
      }
    }
  });
});
