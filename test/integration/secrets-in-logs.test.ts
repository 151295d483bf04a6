import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/shared/logger.ts';
import { connector, NATIVE, startTarget, type Target } from '../support/target.ts';
import { SimClient } from '../support/sim-client.ts';

/** A trace-level logger whose lines go to `add`, to be searched. */
const logInto = (add: (text: string) => void) =>
  createLogger({
    level: 'trace',
    destination: new Writable({
      write(chunk, _enc, cb) {
        add(chunk.toString());
        cb();
      },
    }),
  });

/** Every secret the host's agent was handed (its poll), gathered at each `collect()`. */
function secretsSeen(t: Target, agent: { authorization: string }) {
  const seen = new Set<string>();
  const collect = async () => {
    const d = (await t.http.get('/v1/agent/attachments').set(agent)).body.dhchap;
    for (const p of [d.current, d.previous].filter(Boolean)) {
      seen.add(p.host_secret);
      seen.add(p.ctrl_secret);
    }
  };
  return { seen, collect };
}

describe('secrets never reach the log', () => {
  let t: Target;
  let logged = '';
  const jwt = `sim-jwt-${randomUUID()}`;

  before(async () => {
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logged += chunk.toString();
        cb();
      },
    });
    t = await startTarget({ logger: createLogger({ level: 'trace', destination: sink }), simJwt: jwt });
  });
  after(async () => t?.close());

  it('neither the admin token, a host token, a wrong token nor the backend JWT is logged, on success or failure', async () => {
    const wrong = `wrong-${randomUUID()}`;
    const id = randomUUID();
    assert.equal(
      (
        await t.http
          .post('/v1/volumes')
          .set('authorization', `Bearer ${t.token}`)
          .send({ id, size_gb: 1, multiattach: true })
      ).status,
      201,
    );
    const ok = await t.http
      .post(`/v1/volumes/${id}/initialize_connection`)
      .set('authorization', `Bearer ${t.token}`)
      .send({ connector: connector(NATIVE) });
    assert.equal(ok.status, 200);
    assert.equal((await t.http.get('/v1/attachments').set('authorization', `Bearer ${wrong}`)).status, 401);
    await new SimClient(t.simUrl, { jwt: t.simJwt }).faults({ failNext: { count: 1, status: 500, method: 'PUT' } });
    const failed = await t.http
      .post(`/v1/volumes/${id}/initialize_connection`)
      .set('authorization', `Bearer ${t.token}`)
      .send({ connector: connector(NATIVE) });
    assert.equal(failed.status, 502);
    assert.ok(logged.includes('backend_error'), 'the backend failure is logged');
    const conn = connector(NATIVE);
    const hostToken = (await t.http.post('/v1/hosts').set('authorization', `Bearer ${t.token}`).send({ nqn: conn.nqn }))
      .body.token as string;
    assert.match(hostToken, /^pth_/);
    assert.equal(
      (await t.http.post('/v1/agent/register').set('authorization', `Bearer ${hostToken}`).send({ connector: conn }))
        .status,
      200,
    );
    assert.equal((await t.http.get('/v1/agent/attachments').set('authorization', `Bearer ${hostToken}x`)).status, 401);
    assert.ok(logged.includes('"msg":"request"'), 'requests are logged');
    assert.ok(logged.includes('host token issued'));
    assert.equal(logged.includes(hostToken), false, 'a host token appears in the log');
    assert.ok(logged.includes('connection initialized'));
    for (const secret of [t.token, wrong, jwt])
      assert.equal(logged.includes(secret), false, 'a secret appears in the log');
  });
});

describe('host DH-HMAC-CHAP secrets never reach the log', () => {
  let t: Target;
  let logged = '';
  const key = randomBytes(32).toString('base64');

  before(async () => {
    t = await startTarget({
      logger: logInto((text) => (logged += text)),
      env: { PORTALIS_INBAND_AUTH: 'required', PORTALIS_SECRETS_KEY: key },
    });
  });
  after(async () => t?.close());

  it('neither a host secret, a controller secret nor the secrets key is logged: registration, delivery, rotation, failure', async () => {
    const admin = { authorization: `Bearer ${t.token}` };
    const conn = connector(NATIVE) as { nqn: string };
    const hostToken = (await t.http.post('/v1/hosts').set(admin).send({ nqn: conn.nqn })).body.token as string;
    const agent = { authorization: `Bearer ${hostToken}` };
    const { seen, collect } = secretsSeen(t, agent);
    await collect();
    const rotate = () => t.http.post(`/v1/hosts/${encodeURIComponent(conn.nqn)}/secrets/rotate`).set(admin);
    // A rotation whose backend step fails (logged as a warning with its code), then resumes.
    await new SimClient(t.simUrl, { jwt: t.simJwt }).faults({ failNext: { count: 1, status: 500, method: 'PUT' } });
    assert.equal((await rotate()).status, 502);
    assert.equal((await rotate()).status, 200, 'no attachment: nothing to wait for');
    await collect();
    // The first pair and the rotated one (generation 3: the host secret moved in 2, the controller secret in 3).
    assert.equal(seen.size, 4, 'four secrets');
    assert.ok(logged.includes('host secret rotation step failed'), 'the failure is logged');
    assert.ok(logged.includes('host secret rotation finished'));
    assert.equal(logged.includes('DHHC-1'), false, 'a DHHC-1 string appears in the log');
    for (const secret of [...seen, key]) assert.equal(logged.includes(secret.split(':')[2] ?? secret), false);
  });
});

describe('host DH-HMAC-CHAP secrets never reach a log or an answer, through backend refusals that echo them', () => {
  let t: Target;
  let logged = '';
  const key = randomBytes(32);
  /** How the backend's secrets PUT is refused: echoing the request body in JSON or in an HTML page, or not at all. */
  let refuse: 'json' | 'text' | null = null;
  let upstream = '';
  // A LightOS in front of the simulator that refuses the trusted host's secrets by quoting them,
  // as a strict validator or a proxy's error page might; everything else goes on to the simulator.
  const echo = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    if (refuse && req.method === 'PUT' && req.url?.endsWith('/secrets')) {
      if (refuse === 'json') {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: `invalid trusted-host secrets ${body}` }));
      } else {
        res.writeHead(400, { 'content-type': 'text/html' });
        res.end(`${body} <html><body>400 Bad Request</body></html>`);
      }
      return;
    }
    const headers: Record<string, string> = {};
    for (const h of ['authorization', 'content-type', 'accept'])
      if (typeof req.headers[h] === 'string') headers[h] = req.headers[h];
    const r = await fetch(upstream + req.url, { method: req.method, headers, body: body || undefined });
    res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
    res.end(Buffer.from(await r.arrayBuffer()));
  });

  before(async () => {
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    t = await startTarget({
      logger: logInto((text) => (logged += text)),
      env: {
        PORTALIS_INBAND_AUTH: 'required',
        PORTALIS_SECRETS_KEY: key.toString('base64'),
        PORTALIS_SIM_URL: `http://127.0.0.1:${(echo.address() as AddressInfo).port}`,
      },
    });
    upstream = t.simUrl;
  });
  after(async () => {
    await t?.close();
    echo.closeAllConnections();
    await new Promise((r) => echo.close(r));
  });

  it('JSON and text refusals, an attachment through a rotation, its reports: no secret in a log, an answer or last_error', async () => {
    const admin = { authorization: `Bearer ${t.token}` };
    const conn = connector(NATIVE) as Record<string, unknown> & { nqn: string };
    let answers = '';
    /** Every answer but the agent's poll (the one place the secrets belong). */
    const kept = <T extends { body: unknown; text?: string }>(r: T): T => {
      answers += `${JSON.stringify(r.body)}\n${r.text ?? ''}\n`;
      return r;
    };
    const hostToken = kept(await t.http.post('/v1/hosts').set(admin).send({ nqn: conn.nqn, name: conn.host })).body
      .token as string;
    const agent = { authorization: `Bearer ${hostToken}` };
    assert.equal(kept(await t.http.post('/v1/agent/register').set(agent).send({ connector: conn })).status, 200);
    const { seen, collect } = secretsSeen(t, agent);
    await collect();
    const vol = kept(await t.http.post('/v1/volumes').set(admin).send({ id: randomUUID(), size_gb: 1 }));
    assert.equal(vol.status, 201);
    const init = kept(
      await t.http.post(`/v1/volumes/${vol.body.id}/initialize_connection`).set(admin).send({ connector: conn }),
    );
    assert.equal(init.status, 200, JSON.stringify(init.body));
    const report = (generation: number, error: { code: string; message: string } | null) =>
      t.http
        .put(`/v1/agent/attachments/${init.body.attachment_id}/report`)
        .set(agent)
        .send({
          state: 'connected',
          device_path: '/dev/nvme0n1',
          size_bytes: 1 << 30,
          health: 'optimal',
          paths: [0, 1].map((i) => ({
            ...{ controller: `nvme${i}`, address: '127.0.0.1', port: 4420 + i, transport: 'tcp', state: 'live' },
            ...{ ana_state: i === 0 ? 'optimized' : 'non-optimized', auth_generation: generation },
          })),
          error,
        });
    assert.equal(kept(await report(1, null)).status, 200);
    const rotate = () => t.http.post(`/v1/hosts/${encodeURIComponent(conn.nqn)}/secrets/rotate`).set(admin);
    const status = () => t.http.get(`/v1/hosts/${encodeURIComponent(conn.nqn)}/secrets`).set(admin);
    for (const how of ['json', 'text'] as const) {
      refuse = how;
      const r = kept(await rotate());
      assert.equal(r.status, 502, `${how}: ${JSON.stringify(r.body)}`);
      const s = kept(await status());
      assert.match(s.body.last_error ?? '', /setTrustedHost/, how);
    }
    refuse = null;
    assert.equal(kept(await rotate()).status, 202, 'at the backend, waiting for the agent');
    await collect();
    assert.equal(
      kept(await report(1, { code: 'auth_rotation_failed', message: 'nvme0 keeps its previous secret' })).status,
      200,
    );
    assert.equal(kept(await report(2, null)).status, 200);
    assert.equal(kept(await rotate()).status, 202, 'the host secret moved; the controller secret follows');
    await collect();
    assert.equal(kept(await report(3, null)).status, 200);
    assert.equal(kept(await rotate()).status, 200, 'confirmed and retired');
    kept(await status());
    assert.equal(seen.size, 4, 'three generations, four secrets (each half moves one)');
    assert.ok(logged.includes('host secret rotation step failed'));
    assert.ok(logged.includes('host secret rotation finished'));
    const forms = [...seen].flatMap((text) => {
      const b64 = text.split(':')[2]!;
      const raw = Buffer.from(b64, 'base64').subarray(0, 32);
      return [text, b64, raw.toString('base64'), raw.toString('hex'), raw.toString('hex').toUpperCase()];
    });
    forms.push(key.toString('base64'), key.toString('hex'));
    for (const f of forms) {
      assert.equal(logged.includes(f), false, `${f} in the log`);
      assert.equal(answers.includes(f), false, `${f} in an answer`);
    }
    assert.equal(logged.includes('DHHC-1'), false);
    assert.equal(answers.includes('DHHC-1'), false);
  });
});
