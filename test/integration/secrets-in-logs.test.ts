import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/shared/logger.ts';
import { connector, NATIVE, startTarget, type Target } from '../support/target.ts';
import { SimClient } from '../support/sim-client.ts';

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
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logged += chunk.toString();
        cb();
      },
    });
    t = await startTarget({
      logger: createLogger({ level: 'trace', destination: sink }),
      env: { PORTALIS_INBAND_AUTH: 'required', PORTALIS_SECRETS_KEY: key },
    });
  });
  after(async () => t?.close());

  it('neither a host secret, a controller secret nor the secrets key is logged: registration, delivery, rotation, failure', async () => {
    const admin = { authorization: `Bearer ${t.token}` };
    const conn = connector(NATIVE) as { nqn: string };
    const hostToken = (await t.http.post('/v1/hosts').set(admin).send({ nqn: conn.nqn })).body.token as string;
    const agent = { authorization: `Bearer ${hostToken}` };
    const seen = new Set<string>();
    const collect = async () => {
      const d = (await t.http.get('/v1/agent/attachments').set(agent)).body.dhchap;
      for (const p of [d.current, d.previous].filter(Boolean)) {
        seen.add(p.host_secret);
        seen.add(p.ctrl_secret);
      }
    };
    await collect();
    const rotate = () => t.http.post(`/v1/hosts/${encodeURIComponent(conn.nqn)}/secrets/rotate`).set(admin);
    // A rotation whose backend step fails (logged as a warning with its code), then resumes.
    await new SimClient(t.simUrl, { jwt: t.simJwt }).faults({ failNext: { count: 1, status: 500, method: 'PUT' } });
    assert.equal((await rotate()).status, 502);
    assert.equal((await rotate()).status, 200, 'no attachment: nothing to wait for');
    await collect();
    assert.equal(seen.size, 4, 'two generations, two secrets each');
    assert.ok(logged.includes('host secret rotation step failed'), 'the failure is logged');
    assert.ok(logged.includes('host secret rotation finished'));
    assert.equal(logged.includes('DHHC-1'), false, 'a DHHC-1 string appears in the log');
    for (const secret of [...seen, key]) assert.equal(logged.includes(secret.split(':')[2] ?? secret), false);
  });
});
