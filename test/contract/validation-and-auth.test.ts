import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { connector, startTarget, type Target } from '../support/target.ts';

describe('request validation and authentication', () => {
  let t: Target;
  let volumeId: string;
  const auth = () => ({ authorization: `Bearer ${t.token}` });
  const init = (body: unknown) =>
    t.http
      .post(`/v1/volumes/${volumeId}/initialize_connection`)
      .set(auth())
      .send(body as object);

  before(async () => {
    t = await startTarget();
    volumeId = randomUUID();
    const r = await t.http.post('/v1/volumes').set(auth()).send({ id: volumeId, size_gb: 1 });
    assert.equal(r.status, 201);
  });
  after(async () => t?.close());

  function assertBadRequest(r: { status: number; body: any }, field: string): void {
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'invalid_request');
    assert.ok(r.body.error.message.includes(field), `message ${JSON.stringify(r.body.error.message)} names ${field}`);
  }

  it('no token, a malformed header and a wrong token are 401', async () => {
    for (const headers of [
      {},
      { authorization: 'Basic abc' },
      { authorization: `Bearer ${t.token}x` },
      { authorization: 'Bearer ' },
    ]) {
      const r = await t.http.get('/v1/attachments').set(headers);
      assert.equal(r.status, 401, JSON.stringify(headers));
      assert.equal(r.body.error.code, 'unauthorized');
    }
  });

  it('health, readiness and the OpenAPI document need no token', async () => {
    assert.equal((await t.http.get('/healthz')).status, 200);
    const ready = await t.http.get('/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body.checks, { database: { ok: true }, backend: { ok: true } });
    const doc = await t.http.get('/openapi.json');
    assert.equal(doc.status, 200);
    assert.equal(doc.body.openapi, '3.0.3');
    assert.ok(doc.body.paths['/v1/volumes/{id}/initialize_connection']);
  });

  it('a missing connector is a 400 naming it', async () => {
    assertBadRequest(await init({}), 'connector');
  });

  it('a connector without nqn or host is a 400 naming the field', async () => {
    const { nqn: _n, ...noNqn } = connector();
    assertBadRequest(await init({ connector: noNqn }), 'connector.nqn');
    const { host: _h, ...noHost } = connector();
    assertBadRequest(await init({ connector: noHost }), 'connector.host');
  });

  it('a malformed NQN is a 400 naming connector.nqn', async () => {
    for (const nqn of [
      'iqn.2004-10.com.example:host',
      'nqn.2014-13.org.nvmexpress:uuid:x',
      'nqn.2014-08.org.nvmexpress:uuid: space',
      'nqn',
    ]) {
      assertBadRequest(await init({ connector: connector({ nqn }) }), 'connector.nqn');
    }
  });

  it('an NQN over 223 bytes is a 400', async () => {
    const nqn = `nqn.2014-08.org.example:${'a'.repeat(223)}`;
    assertBadRequest(await init({ connector: connector({ nqn }) }), 'connector.nqn');
  });

  it('an unknown top-level field is a 400 naming it', async () => {
    assertBadRequest(await init({ connector: connector(), bogus: 1 }), 'bogus');
  });

  it('a wrongly typed field is a 400 naming it', async () => {
    assertBadRequest(await init({ connector: connector({ multipath: 'yes' }) }), 'connector.multipath');
    assertBadRequest(
      await t.http.post('/v1/volumes').set(auth()).send({ id: randomUUID(), size_gb: 'big' }),
      'size_gb',
    );
    assertBadRequest(await t.http.post('/v1/volumes').set(auth()).send({ id: randomUUID(), size_gb: 0 }), 'size_gb');
  });

  it('extra os-brick connector keys are accepted, oversized ones are not', async () => {
    const ok = await init({
      connector: connector({ 'system uuid': randomUUID(), found_dsc: '', mountpoint: '/dev/vdb' }),
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assertBadRequest(await init({ connector: connector({ note: 'x'.repeat(2000) }) }), 'connector.note');
  });

  it('a path id that is not a UUID is a 400 naming id', async () => {
    const r = await t.http
      .post('/v1/volumes/not-a-uuid/initialize_connection')
      .set(auth())
      .send({ connector: connector() });
    assertBadRequest(r, 'id');
  });

  it('a bad query filter is a 400 naming it', async () => {
    assertBadRequest(await t.http.get('/v1/attachments').query({ status: 'sideways' }).set(auth()), 'status');
  });

  it('malformed JSON is a 400, an oversized body a 413, neither a 500', async () => {
    const bad = await t.http
      .post(`/v1/volumes/${volumeId}/initialize_connection`)
      .set(auth())
      .set('content-type', 'application/json')
      .send('{"connector": ');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_request');
    const huge = await t.http
      .post(`/v1/volumes/${volumeId}/initialize_connection`)
      .set(auth())
      .set('content-type', 'application/json')
      .send(JSON.stringify({ connector: connector(), pad: 'x'.repeat(200_000) }));
    assert.equal(huge.status, 413);
    assert.equal(huge.body.error.code, 'payload_too_large');
  });

  it('a non-JSON body, an unknown path and a wrong method get clear 4xx answers', async () => {
    const text = await t.http
      .post(`/v1/volumes/${volumeId}/initialize_connection`)
      .set(auth())
      .set('content-type', 'text/plain')
      .send('hello');
    assert.equal(text.status, 400);
    const nf = await t.http.get('/v1/nothing-here').set(auth());
    assert.equal(nf.status, 404);
    const m = await t.http.delete('/v1/attachments').set(auth());
    assert.equal(m.status, 405);
  });

  it('a create repeated with other parameters is a 409; the same parameters return the volume', async () => {
    const same = await t.http.post('/v1/volumes').set(auth()).send({ id: volumeId, size_gb: 1 });
    assert.equal(same.status, 200);
    assert.equal(same.body.id, volumeId);
    const conflict = await t.http.post('/v1/volumes').set(auth()).send({ id: volumeId, size_gb: 2 });
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.error.code, 'already_exists');
  });
});
