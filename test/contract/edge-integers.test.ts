import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { lifecycleClient } from '../support/lifecycle.ts';
import { httpRequest } from '../support/raw-http.ts';
import { connector, NATIVE, startTarget, type Target } from '../support/target.ts';

/**
 * Integers at the edge: a query or path parameter is decimal digits within the spec's bounds, a body
 * field a JSON number within them (never a string). Everything else is a 400 `invalid_request` from
 * the edge's checks and the schemas, naming the field, before any query: never the database error
 * net's "cannot be stored", never a value read as something the client did not write (`0x10` as 16).
 */
describe('integers at the edge: decimal digits within the bounds, or a 400 naming the field', () => {
  let t: Target;
  let api: ReturnType<typeof lifecycleClient>;
  let hostToken: string;
  let attachmentId: string;
  let volumeId: string;
  const admin = () => ({ authorization: `Bearer ${t.token}` });
  const host = () => ({ authorization: `Bearer ${hostToken}` });

  before(async () => {
    t = await startTarget({ listen: true });
    api = lifecycleClient(t);
    const conn = connector(NATIVE);
    const issued = await t.http.post('/v1/hosts').set(admin()).send({ nqn: conn.nqn, name: conn.host });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    hostToken = issued.body.token;
    volumeId = (await api.created()).id;
    const init = await api.init(volumeId, conn);
    assert.equal(init.status, 200, JSON.stringify(init.body));
    attachmentId = init.body.attachment_id;
  });
  after(async () => t?.close());

  /** A GET whose query goes out byte for byte (no client re-encodes `+` or spaces). */
  const get = (path: string, headers: Record<string, string>) => httpRequest(t.url!, { method: 'GET', path, headers });

  function assertRefused(r: { status: number; body: any }, field: string, what: string): void {
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body?.error?.code, 'invalid_request', `${what}: ${JSON.stringify(r.body)}`);
    assert.ok(r.body.error.message.includes(field), `${what}: ${r.body.error.message} names ${field}`);
    assert.doesNotMatch(
      r.body.error.message,
      /cannot be stored/,
      `${what}: refused by validation, not by the database`,
    );
  }

  /** Written in another base, with an exponent, a fraction, a plus sign, spaces; empty; not a number. */
  const NOT_DECIMAL = ['0x10', '0X10', '0b11', '0o7', '1e1', '5.0', '+5', '%205', '5%20', '', '1_0', 'Infinity'];

  it('wait and since of the agent poll: decimal digits only (wait=0x10 is not 16 s) and within 0..300, 0..2^53-1', async () => {
    for (const v of NOT_DECIMAL)
      assertRefused(await get(`/v1/agent/attachments?wait=${v}`, host()), 'wait', `wait=${v}`);
    assertRefused(await get('/v1/agent/attachments?wait=1&wait=2', host()), 'wait', 'wait twice');
    for (const v of ['301', '-1', '99999999999999999999', '1'.repeat(400)])
      assertRefused(await get(`/v1/agent/attachments?wait=${v}`, host()), 'wait', `wait=${v}`);
    for (const v of ['0x1', '1e3', '9007199254740992', '99999999999999999999', '-1'])
      assertRefused(await get(`/v1/agent/attachments?since=${v}`, host()), 'since', `since=${v}`);
    const ok = await get('/v1/agent/attachments?since=0&wait=0', host());
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const padded = await get('/v1/agent/attachments?since=007&wait=00', host());
    assert.equal(padded.status, 200, 'leading zeros are still decimal digits');
    assert.equal(padded.body.version, ok.body.version);
  });

  it('offset and limit of the health matrix and the events: offset=99999999999999999999 is a 400 from validation', async () => {
    for (const [param, v] of [
      ['offset', '99999999999999999999'],
      ['offset', '2147483648'],
      ['offset', '0x10'],
      ['offset', '-1'],
      ['limit', '0b11'],
      ['limit', '1001'],
      ['limit', '0'],
      ['limit', '1e2'],
    ] as const)
      assertRefused(await get(`/v1/health/multipath?${param}=${v}`, admin()), param, `${param}=${v}`);
    for (const v of ['0x5', '1001', '99999999999999999999'])
      assertRefused(await get(`/v1/attachments/${attachmentId}/events?limit=${v}`, admin()), 'limit', `limit=${v}`);
    const page = await get('/v1/health/multipath?offset=2147483647&limit=1000', admin());
    assert.equal(page.status, 200, JSON.stringify(page.body));
    assert.equal(page.body.page.offset, 2147483647);
    assert.equal((await get(`/v1/attachments/${attachmentId}/events?limit=1`, admin())).status, 200);
  });

  it('body integers are JSON numbers within the bounds: strings, fractions and out-of-range values are refused', async () => {
    for (const size of ['16', '0x10', 1.5, 0, 65537, 1e20, -1]) {
      const id = randomUUID();
      assertRefused(await api.create({ id, size_gb: size }), 'size_gb', `size_gb=${JSON.stringify(size)}`);
      assert.equal((await api.get(id)).status, 404, 'nothing was created');
    }
    for (const replicas of ['3', 2.5, 4])
      assertRefused(await api.create({ replicas }), 'replicas', `replicas=${JSON.stringify(replicas)}`);
    for (const size of ['2', '0x2', 2.5, 65537])
      assertRefused(await api.extend(volumeId, size as number), 'new_size_gb', `new_size_gb=${JSON.stringify(size)}`);
    assert.equal((await api.get(volumeId)).body.size_gb, 1, 'the size is unchanged');
    const path = {
      controller: 'nvme0',
      address: '127.0.0.1',
      port: 4420,
      transport: 'tcp',
      state: 'live',
      ana_state: null,
    };
    const report = (over: Record<string, unknown>) => ({
      state: 'connected',
      device_path: '/dev/nvme0n1',
      size_bytes: 1024,
      health: 'optimal',
      paths: [path],
      error: null,
      ...over,
    });
    const put = (body: unknown) =>
      t.http
        .put(`/v1/agent/attachments/${attachmentId}/report`)
        .set(host())
        .send(body as object);
    for (const port of ['4420', 4420.5, 65536, -1])
      assertRefused(await put(report({ paths: [{ ...path, port }] })), 'port', `port=${JSON.stringify(port)}`);
    for (const size of ['1024', 0.5, -1])
      assertRefused(await put(report({ size_bytes: size })), 'size_bytes', `size_bytes=${JSON.stringify(size)}`);
    // JSON has one number 2 whatever its spelling: 2.0 and 2e0 are that number (RFC 8259 section 6).
    const grown = await t.http
      .post(`/v1/volumes/${volumeId}/extend`)
      .set(admin())
      .type('json')
      .send('{"new_size_gb": 2.0e0}');
    assert.equal(grown.status, 200, JSON.stringify(grown.body));
    assert.equal((await api.get(volumeId)).body.size_gb, 2);
  });
});
