import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { VERSION } from '../shared/version.ts';
import { HttpServiceClient, ServiceError } from './service-client.ts';

const TOKEN = 'ptl_host_s3cr3t-token-value';

describe('HttpServiceClient', () => {
  let server: http.Server;
  let url: string;
  const seen: { method: string; url: string; auth?: string; version?: string; body: string }[] = [];
  let next: { status: number; body: unknown } | null = null;

  before(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push({
          method: req.method!,
          url: req.url!,
          auth: req.headers.authorization,
          version: req.headers['x-portalis-agent-version'] as string | undefined,
          body,
        });
        const answer = next ?? {
          status: 200,
          body: req.url!.startsWith('/v1/agent/attachments?')
            ? { version: 4, attachments: [] }
            : { host: { nqn: 'nqn.h', name: 'h' } },
        };
        next = null;
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('speaks the agent protocol with the bearer token', async () => {
    const c = new HttpServiceClient({ url, token: TOKEN });
    assert.deepEqual(await c.register({ nqn: 'nqn.h', host: 'h' }), { host: { nqn: 'nqn.h', name: 'h' } });
    assert.deepEqual(await c.listAttachments(null, 30), { version: 4, attachments: [] });
    await c.listAttachments(4, 25);
    await c.report('att/1', {
      state: 'connected',
      device_path: '/dev/nvme0n1',
      size_bytes: 1,
      health: 'optimal',
      paths: [],
      error: null,
    });
    assert.deepEqual(
      seen.map((s) => `${s.method} ${s.url}`),
      [
        'POST /v1/agent/register',
        'GET /v1/agent/attachments?wait=0',
        'GET /v1/agent/attachments?since=4&wait=25',
        'PUT /v1/agent/attachments/att%2F1/report',
      ],
    );
    assert.ok(seen.every((s) => s.auth === `Bearer ${TOKEN}`));
    // Its version with every request (the service records it at register).
    assert.deepEqual(new Set(seen.map((s) => s.version)), new Set([VERSION]));
    assert.deepEqual(JSON.parse(seen[0]!.body), { connector: { nqn: 'nqn.h', host: 'h' } });
    assert.equal(JSON.parse(seen[3]!.body).device_path, '/dev/nvme0n1');
  });

  it("passes the host's DH-HMAC-CHAP secrets of the list through unchanged", async () => {
    const dhchap = {
      current: { generation: 2, host_secret: 'DHHC-1:00:bmV3:', ctrl_secret: 'DHHC-1:00:Y3RybA==:' },
      previous: { generation: 1, host_secret: 'DHHC-1:00:b2xk:', ctrl_secret: 'DHHC-1:00:b2xkYw==:' },
    };
    next = { status: 200, body: { version: 9, attachments: [], dhchap } };
    const list = await new HttpServiceClient({ url, token: TOKEN }).listAttachments(null, 0);
    assert.deepEqual(list.dhchap, dhchap);
  });

  it('turns failures into ServiceErrors that never carry the token', async () => {
    const c = new HttpServiceClient({ url, token: TOKEN });
    next = { status: 403, body: { error: { code: 'forbidden', message: 'token host mismatch' } } };
    await assert.rejects(c.register({ nqn: 'nqn.x', host: 'h' }), (e: unknown) => {
      assert.ok(e instanceof ServiceError);
      assert.equal(e.status, 403);
      assert.equal(e.retryable, false);
      assert.match(e.message, /403 forbidden: token host mismatch/);
      assert.ok(!JSON.stringify({ ...e, m: e.message, s: e.stack }).includes(TOKEN));
      return true;
    });
    next = { status: 503, body: {} };
    await assert.rejects(c.listAttachments(1, 0), (e: ServiceError) => e.retryable);
    next = { status: 200, body: { nope: true } };
    await assert.rejects(c.listAttachments(1, 0), /malformed/);

    const down = new HttpServiceClient({ url: 'http://127.0.0.1:1', token: TOKEN });
    await assert.rejects(down.listAttachments(null, 0), (e: unknown) => {
      assert.ok(e instanceof ServiceError && e.status === null && e.retryable);
      assert.ok(!String(e.message).includes(TOKEN) && !String(e.stack).includes(TOKEN));
      return true;
    });
  });
});
