import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { createLogger } from '../../src/shared/logger.ts';
import { poll } from '../../src/shared/poll.ts';
import { lifecycleClient } from '../support/lifecycle.ts';
import { httpRequest, rawHttp } from '../support/raw-http.ts';
import { byUrl, connector, NATIVE, startTarget, type Target } from '../support/target.ts';

/**
 * What a client can send that the schemas alone do not stop: broken percent-encoding, bodies that
 * do not decompress, strings PostgreSQL cannot hold, integers past 2^63, requests Node's HTTP
 * parser refuses, `Expect` headers, and the order of the checks (the token first). Each is a 4xx
 * with the JSON error body naming the field, never a 500; in-process, one warn line and no stack.
 * Served through the service's own HTTP server (not supertest's), as `npm start` serves it.
 */
describe('the edges of the API: encodings, unstorable values, the HTTP parser, order of checks', () => {
  let t: Target;
  let api: ReturnType<typeof lifecycleClient>;
  const lines: Record<string, unknown>[] = [];
  const admin = () => ({ authorization: `Bearer ${t.token}` });
  const as = (token: string) => ({ authorization: `Bearer ${token}` });
  let host: { conn: Record<string, unknown>; token: string };
  let volumeId: string;
  let attachmentId: string;

  before(async () => {
    const sink = new Writable({
      write(chunk, _enc, cb) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
        cb();
      },
    });
    t = await startTarget({ listen: true, logger: createLogger({ level: 'debug', destination: sink }) });
    api = lifecycleClient(t);
    const conn = connector(NATIVE);
    const issued = await t.http.post('/v1/hosts').set(admin()).send({ nqn: conn.nqn, name: conn.host });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    host = { conn, token: issued.body.token };
    volumeId = (await api.created()).id;
    const init = await api.init(volumeId, conn);
    assert.equal(init.status, 200, JSON.stringify(init.body));
    attachmentId = init.body.attachment_id;
  });
  after(async () => t?.close());

  /** The log lines since `mark` (in-process only; by URL nothing is captured). */
  const since = (mark: number) => lines.slice(mark);
  const errorLines = () => lines.filter((l) => Number(l.level) >= 50);

  function assertError(r: { status: number; body: any }, status: number, code: string, field?: string): void {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.equal(typeof r.body?.error?.message, 'string', JSON.stringify(r.body));
    assert.equal(r.body.error.code, code, JSON.stringify(r.body));
    if (field)
      assert.ok(r.body.error.message.includes(field), `${JSON.stringify(r.body.error.message)} names ${field}`);
  }

  /** A request whose body goes out byte for byte. */
  const send = (method: string, path: string, headers: Record<string, string>, body?: string | Buffer) =>
    httpRequest(t.url!, { method, path, headers, body });

  /** Every route with a path parameter, the principal it admits and the parameter's name. */
  const PATH_ROUTES = () => [
    { method: 'GET', path: (p: string) => `/v1/volumes/${p}`, token: t.token, param: 'id' },
    { method: 'DELETE', path: (p: string) => `/v1/volumes/${p}`, token: t.token, param: 'id' },
    { method: 'POST', path: (p: string) => `/v1/volumes/${p}/extend`, token: t.token, param: 'id' },
    { method: 'GET', path: (p: string) => `/v1/volumes/${p}/snapshots`, token: t.token, param: 'id' },
    { method: 'GET', path: (p: string) => `/v1/snapshots/${p}`, token: t.token, param: 'id' },
    { method: 'GET', path: (p: string) => `/v1/attachments/${p}`, token: t.token, param: 'id' },
    { method: 'GET', path: (p: string) => `/v1/hosts/${p}`, token: t.token, param: 'nqn' },
    { method: 'DELETE', path: (p: string) => `/v1/hosts/${p}/token`, token: t.token, param: 'nqn' },
    { method: 'PUT', path: (p: string) => `/v1/agent/attachments/${p}/report`, token: host.token, param: 'id' },
  ];
  const MALFORMED = ['%ZZ', '%', '%E0%A4%A', '%C0%AE%C0%AE', '%ED%A0%80', 'a%2'];

  it('malformed percent-encoding in any path parameter is a 400 naming it, once authenticated', async () => {
    const mark = lines.length;
    let rejected = 0;
    for (const route of PATH_ROUTES()) {
      for (const bad of MALFORMED) {
        const path = route.path(bad);
        const none = await send(route.method, path, {});
        assertError(none, 401, 'unauthorized');
        const ok = await send(route.method, path, { ...as(route.token), 'content-type': 'application/json' }, '{}');
        assertError(ok, 400, 'invalid_request', route.param);
        assert.deepEqual(ok.body.error.details?.fields, [route.param], `${route.method} ${path}: ${ok.text}`);
        rejected += 1;
      }
    }
    if (!byUrl()) {
      const warned = since(mark).filter((l) => l.level === 40 && l.msg === 'request rejected');
      assert.equal(warned.length, rejected, 'one warn line per rejected request');
      assert.ok(!since(mark).some((l) => JSON.stringify(l).includes('"stack"')), 'no stack is logged');
      assert.deepEqual(errorLines(), []);
    }
  });

  it('a token the route does not admit is a 403 before the path is decoded', async () => {
    assertError(await t.http.get('/v1/volumes/%ZZ').set(as(host.token)), 403, 'forbidden');
    assertError(await t.http.put('/v1/agent/attachments/%ZZ/report').set(admin()).send({}), 403, 'forbidden');
  });

  /** Every operation that takes a body, with a valid body and the token it admits. */
  const BODY_ROUTES = () => [
    { method: 'POST', path: '/v1/volumes', token: t.token, body: { id: randomUUID(), size_gb: 1 } },
    { method: 'POST', path: `/v1/volumes/${volumeId}/extend`, token: t.token, body: { new_size_gb: 1 } },
    { method: 'POST', path: `/v1/volumes/${volumeId}/snapshots`, token: t.token, body: { id: randomUUID() } },
    {
      method: 'POST',
      path: `/v1/volumes/${volumeId}/initialize_connection`,
      token: t.token,
      body: { connector: host.conn },
    },
    {
      method: 'POST',
      path: `/v1/volumes/${randomUUID()}/terminate_connection`,
      token: t.token,
      body: { connector: host.conn },
    },
    // Another host's nqn: issuing a token again revokes the previous one.
    { method: 'POST', path: '/v1/hosts', token: t.token, body: { nqn: connector().nqn, name: 'x' } },
    { method: 'POST', path: '/v1/agent/register', token: host.token, body: { connector: host.conn } },
    {
      method: 'PUT',
      path: `/v1/agent/attachments/${attachmentId}/report`,
      token: host.token,
      body: { state: 'connecting', device_path: null, size_bytes: null, health: null, paths: [], error: null },
    },
  ];

  it('every route that takes a body: one that does not decompress is a 400, an unknown encoding a 415', async () => {
    const json = { 'content-type': 'application/json' };
    for (const route of BODY_ROUTES()) {
      const what = `${route.method} ${route.path}`;
      const garbage = Buffer.from('this is not compressed at all');
      for (const enc of ['gzip', 'deflate', 'br', 'GZIP']) {
        const r = await send(
          route.method,
          route.path,
          { ...json, ...as(route.token), 'content-encoding': enc },
          garbage,
        );
        assertError(r, 400, 'invalid_request', 'decompress');
        // Valid compression of invalid JSON: decompressed first, then refused as JSON.
        const notJson = { gzip: gzipSync, deflate: deflateSync, br: brotliCompressSync, GZIP: gzipSync }[enc]!(
          Buffer.from('{"truncated": '),
        );
        const r2 = await send(
          route.method,
          route.path,
          { ...json, ...as(route.token), 'content-encoding': enc },
          notJson,
        );
        assertError(r2, 400, 'invalid_request', 'JSON');
      }
      for (const enc of ['x-unknown', 'gzip, br', 'compress']) {
        const r = await send(
          route.method,
          route.path,
          { ...json, ...as(route.token), 'content-encoding': enc },
          garbage,
        );
        assertError(r, 415, 'unsupported_media_type', 'content-encoding');
      }
      // Without a token, nothing of the body is looked at.
      assertError(
        await send(route.method, route.path, { ...json, 'content-encoding': 'gzip' }, garbage),
        401,
        'unauthorized',
      );
      // A well-compressed valid body is served like a plain one.
      const ok = await send(
        route.method,
        route.path,
        { ...json, ...as(route.token), 'content-encoding': 'gzip' },
        gzipSync(Buffer.from(JSON.stringify(route.body))),
      );
      assert.ok(
        ok.status < 500 && ok.status !== 400 && ok.status !== 415,
        `${what}: ${ok.status} ${JSON.stringify(ok.body)}`,
      );
    }
    if (!byUrl()) assert.deepEqual(errorLines(), []);
  });

  it('the token is checked before the body: 401 without one, 403 for a host token on an admin route', async () => {
    const json = { 'content-type': 'application/json' };
    const init = `/v1/volumes/${volumeId}/initialize_connection`;
    assertError(await send('POST', init, json, '{"connector": '), 401, 'unauthorized');
    assertError(await send('POST', init, json, JSON.stringify({ pad: 'x'.repeat(200_000) })), 401, 'unauthorized');
    assertError(await send('POST', init, json, JSON.stringify({ connector: 'wrong' })), 401, 'unauthorized');
    assertError(await send('POST', init, { ...json, 'content-encoding': 'zstd-ish' }, 'x'), 401, 'unauthorized');
    assertError(await send('POST', init, { ...json, ...as(`${host.token}x`) }, '{"connector": '), 401, 'unauthorized');
    const hostToken = as(host.token);
    assertError(await send('POST', init, { ...json, ...hostToken }, '{"connector": '), 403, 'forbidden');
    assertError(
      await send('POST', '/v1/volumes', { ...json, ...hostToken }, JSON.stringify({ id: 1 })),
      403,
      'forbidden',
    );
    assertError(
      await send('POST', '/v1/hosts', { ...json, ...hostToken }, JSON.stringify({ pad: 'x'.repeat(200_000) })),
      403,
      'forbidden',
    );
    // The admin token on the agent API with an invalid body: 403 as well.
    assertError(await send('POST', '/v1/agent/register', { ...json, ...admin() }, '{'), 403, 'forbidden');
    // Authorized, the same bodies get their own answers.
    assertError(await send('POST', init, { ...json, ...admin() }, '{"connector": '), 400, 'invalid_request', 'JSON');
    assertError(
      await send('POST', init, { ...json, ...admin() }, JSON.stringify({ pad: 'x'.repeat(200_000) })),
      413,
      'payload_too_large',
    );
  });

  describe('values PostgreSQL cannot hold are refused, naming the field, and nothing is stored', () => {
    const NUL = 'a\u0000b';
    const SURROGATE = 'a\ud800b';

    it('NUL and lone surrogates in a host name, a connector (values and keys) and an agent report', async () => {
      for (const bad of [NUL, SURROGATE, '\udfff', '\u0000']) {
        const c = connector(NATIVE);
        assertError(
          await t.http.post('/v1/hosts').set(admin()).send({ nqn: c.nqn, name: bad }),
          400,
          'invalid_request',
          'name',
        );
        assert.equal((await t.http.get(`/v1/hosts/${c.nqn}`).set(admin())).status, 404, 'no host was created');

        const vol = (await api.created()).id;
        for (const [field, conn] of [
          ['connector.host', connector({ ...NATIVE, host: bad })],
          ['connector.platform', connector({ ...NATIVE, platform: bad })],
          ['connector.note', connector({ ...NATIVE, note: bad })],
          ['connector.host_ips.0', connector({ ...NATIVE, host_ips: [bad] })],
          ['connector', { ...connector(NATIVE), [`k${bad}`]: 'v' }],
        ] as const) {
          assertError(await api.init(vol, conn), 400, 'invalid_request', field);
          assertError(
            await t.http
              .post('/v1/agent/register')
              .set(as(host.token))
              .send({ connector: { ...conn, nqn: host.conn.nqn } }),
            400,
            'invalid_request',
            field,
          );
        }
        assert.deepEqual(await api.attachments(vol), [], 'nothing was attached');

        const report = {
          state: 'error',
          device_path: '/dev/nvme0n1',
          size_bytes: 1024,
          health: 'failed',
          paths: [
            { controller: 'nvme0', address: '127.0.0.1', port: 4420, transport: 'tcp', state: 'live', ana_state: null },
          ],
          error: { code: 'x', message: 'y' },
        };
        for (const [field, body] of [
          ['device_path', { ...report, device_path: bad }],
          ['error.message', { ...report, error: { code: 'x', message: bad } }],
          ['error.code', { ...report, error: { code: bad, message: 'y' } }],
          ['paths.0.address', { ...report, paths: [{ ...report.paths[0], address: bad }] }],
          ['paths.0.controller', { ...report, paths: [{ ...report.paths[0], controller: bad }] }],
        ] as const) {
          const r = await t.http.put(`/v1/agent/attachments/${attachmentId}/report`).set(as(host.token)).send(body);
          assertError(r, 400, 'invalid_request', field);
        }
      }
      const a = (await t.http.get(`/v1/attachments/${attachmentId}`).set(admin())).body;
      assert.ok(a.agent === null || a.agent.state !== 'error', 'no rejected report was stored');
    });

    it('NUL in a percent-encoded path or query parameter is a 400 naming it', async () => {
      assertError(await t.http.get('/v1/volumes/a%00b').set(admin()), 400, 'invalid_request', 'id');
      assertError(await t.http.get(`/v1/hosts/${host.conn.nqn}%00`).set(admin()), 400, 'invalid_request', 'nqn');
      assertError(
        await t.http.get(`/v1/attachments?host_nqn=${host.conn.nqn}%00`).set(admin()),
        400,
        'invalid_request',
        'host_nqn',
      );
    });

    it('numbers JSON cannot carry exactly or at all: size_bytes from 2^63 on, infinite values', async () => {
      const url = `/v1/agent/attachments/${attachmentId}/report`;
      const raw = (size: string) =>
        `{"state":"connected","device_path":"/dev/nvme0n1","size_bytes":${size},"health":"optimal","paths":[],"error":null}`;
      for (const size of ['9223372036854775808', '18446744073709551616', '9007199254740993', '1e30', '1e400']) {
        const r = await send('PUT', url, { ...as(host.token), 'content-type': 'application/json' }, raw(size));
        assertError(r, 400, 'invalid_request', 'size_bytes');
      }
      const ok = await send(
        'PUT',
        url,
        { ...as(host.token), 'content-type': 'application/json' },
        raw('9007199254740991'),
      );
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const a = (await t.http.get(`/v1/attachments/${attachmentId}`).set(admin())).body;
      assert.equal(a.agent.size_bytes, 9007199254740991);
      const body = `{"connector": ${JSON.stringify(host.conn).slice(0, -1)}, "weight": 1e400}}`;
      assertError(
        await send(
          'POST',
          `/v1/volumes/${volumeId}/initialize_connection`,
          { ...admin(), 'content-type': 'application/json' },
          body,
        ),
        400,
        'invalid_request',
        'connector.weight',
      );
      assertError(
        await t.http.get('/v1/agent/attachments').query({ since: '1e400' }).set(as(host.token)),
        400,
        'invalid_request',
        'since',
      );
    });
  });

  describe("requests Node's HTTP parser refuses, and Expect headers", () => {
    const url = () => t.url!;

    it('bad chunked encoding, a NUL in the path and headers over 16 KiB get the JSON error body', async () => {
      const mark = lines.length;
      const chunked = await rawHttp(
        url(),
        'POST /v1/volumes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n',
      );
      assert.equal(chunked.status, 400, chunked.body);
      assert.equal((chunked.json as any).error.code, 'invalid_request');
      assert.match((chunked.json as any).error.message, /chunk/i);
      const nul = await rawHttp(url(), 'GET /v1/vol\u0000umes HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal(nul.status, 400, nul.body);
      assert.equal((nul.json as any).error.code, 'invalid_request');
      const big = await rawHttp(url(), `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
      assert.equal(big.status, 431, big.body);
      assert.equal((big.json as any).error.code, 'headers_too_large');
      assert.match(big.headers['content-type'] ?? '', /application\/json/);
      // The service goes on serving.
      assert.equal((await t.http.get('/healthz')).status, 200);
      if (!byUrl()) {
        const warned = since(mark).filter((l) => l.msg === 'request refused by the HTTP parser');
        assert.equal(warned.length, 3);
        assert.ok(warned.every((l) => l.level === 40));
        assert.deepEqual(errorLines(), []);
      }
    });

    it('an Expect header other than 100-continue (empty, unknown) is served, not answered 417', async () => {
      for (const expect of ['', 'something-else', '100-continue']) {
        const r = await rawHttp(
          url(),
          `GET /v1/volumes/${volumeId} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.token}\r\n` +
            `Expect: ${expect}\r\nConnection: close\r\n\r\n`,
        );
        assert.equal(r.status, 200, `Expect: ${JSON.stringify(expect)} → ${r.status} ${r.body}`);
        assert.equal((r.json as any).id, volumeId);
      }
      const body = JSON.stringify({ id: randomUUID(), size_gb: 1 });
      const post = await rawHttp(
        url(),
        `POST /v1/volumes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.token}\r\nExpect:\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
      assert.equal(post.status, 201, post.body);
    });

    it('a client that aborts mid-body is logged at info, not as an unexpected error', async (ctx) => {
      if (byUrl()) return ctx.skip('needs the in-process log');
      const mark = lines.length;
      await new Promise<void>((resolve, reject) => {
        const s = net.connect(Number(new URL(url()).port), '127.0.0.1', () => {
          s.write(
            `POST /v1/volumes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.token}\r\n` +
              `Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"id": `,
            () => {
              s.destroy();
              resolve();
            },
          );
        });
        s.on('error', reject);
      });
      const r = await poll(
        () => {
          const got = since(mark).find((l) => l.msg === 'client closed the connection mid-request');
          return got ? { done: true as const, value: got } : { done: false as const, last: since(mark) };
        },
        { deadlineMs: 10_000, intervalMs: 20 },
      );
      assert.ok(r.done, `an info line about the abort; got ${JSON.stringify(r.done ? null : r.last)}`);
      assert.equal(r.value.level, 30);
      assert.deepEqual(errorLines(), []);
      assert.equal((await t.http.get('/healthz')).status, 200);
    });
  });

  it('a size the cluster has no room for is 409 insufficient_capacity, not a 5xx', async () => {
    // The schema admits 64 TiB; the simulated cluster (like many real ones) has less free.
    const create = await api.create({ size_gb: 65536 });
    assertError(create, 409, 'insufficient_capacity', 'capacity');
    const extend = await api.extend(volumeId, 65536);
    assertError(extend, 409, 'insufficient_capacity', 'capacity');
    const v = await api.get(volumeId);
    assert.equal(v.body.size_gb, 1, 'the size is unchanged');
  });

  it('nothing above was logged as an unexpected error', () => {
    if (!byUrl()) assert.deepEqual(errorLines(), []);
  });
});
