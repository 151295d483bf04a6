import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { isDriverError } from '../../driver/errors.ts';
import { LightosBackend } from './backend.ts';
import { type FakeLightos, type RecordedRequest, startFakeLightos } from './testing/fake-lightos.ts';

const uuid = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
const NODES = [0, 1, 2].map((i) => ({
  UUID: `11111111-0000-4000-8000-00000000000${i}`,
  name: `node-${i}`,
  nvmeEndpoint: `10.0.0.${i + 1}:4420`,
  state: 'Active',
}));
/** A volume as LightOS lists it: no `replicaPlacement` (a simulator extension), so every node is a path. */
const volume = (i: number) => ({ UUID: uuid(i), name: `volume-${i}`, size: '1073741824', state: 'Available' });

/** A LightOS holding volumes 0..count-1, listing them by `?limit=&offsetUUID=` (or ignoring the offset). */
async function lightos(
  count: number,
  opts: { ignoreOffset?: boolean; omitEmpty?: boolean; unreadable?: number } = {},
): Promise<FakeLightos> {
  return startFakeLightos((req: RecordedRequest) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/api/v2/nodes') return { body: { nodes: NODES } };
    const limit = Number(url.searchParams.get('limit'));
    const offset = opts.ignoreOffset ? null : url.searchParams.get('offsetUUID');
    const all = Array.from({ length: count }, (_, i) =>
      i === opts.unreadable ? { ...volume(i), size: 'lots' } : volume(i),
    ).filter((v) => !offset || v.UUID > offset);
    const page = all.slice(0, limit);
    return { body: page.length === 0 && opts.omitEmpty ? {} : { volumes: page } };
  });
}

const fakes: FakeLightos[] = [];
after(() => Promise.all(fakes.map((f) => f.close())));

async function listing(count: number, pageSize: number, want: number[], opts = {}) {
  const fake = await lightos(count, opts);
  fakes.push(fake);
  const backend = new LightosBackend({ endpoints: [fake.url], listPageSize: pageSize, pollIntervalMs: 10 });
  const paths = await backend.listVolumePaths(want.map(uuid));
  const pages = fake.requests.filter((r) => r.url.startsWith('/api/v2/projects/default/volumes')).map((r) => r.url);
  return { paths, pages, nodes: fake.requests.filter((r) => r.url === '/api/v2/nodes').length };
}

describe('LightOS volume listing (listVolumePaths)', () => {
  test('pages by limit and offsetUUID, reads the nodes once, stops once every volume asked for was seen', async () => {
    const { paths, pages, nodes } = await listing(10, 4, [1, 6]);
    assert.deepEqual(pages, [
      '/api/v2/projects/default/volumes?limit=4',
      `/api/v2/projects/default/volumes?limit=4&offsetUUID=${uuid(3)}`,
    ]);
    assert.equal(nodes, 1);
    assert.deepEqual([...paths.keys()], [uuid(1), uuid(6)]);
    assert.deepEqual(
      paths.get(uuid(6))!.map((p) => p.portal.address),
      ['10.0.0.1', '10.0.0.2', '10.0.0.3'],
      'without placement every Active node is a path, as volumePaths',
    );
  });

  test('a volume the list does not have is absent; the list is read to its short last page', async () => {
    const { paths, pages } = await listing(9, 4, [2, 42]);
    assert.equal(pages.length, 3);
    assert.deepEqual([...paths.keys()], [uuid(2)]);
  });

  test('a full last page ends the list only with an empty page (its `volumes` may be left out)', async () => {
    const { paths, pages } = await listing(8, 4, [42], { omitEmpty: true });
    assert.equal(pages.length, 3);
    assert.equal(paths.size, 0);
  });

  test('a listed volume the adapter cannot read is left out, not the page', async () => {
    const { paths, pages } = await listing(8, 4, [3, 5], { unreadable: 3 });
    // Volume 3, asked for but unreadable, is never seen: the list is read to its end.
    assert.equal(pages.length, 3);
    assert.ok(pages[1]!.endsWith(`offsetUUID=${uuid(3)}`), 'the next page goes on from the unreadable last volume');
    assert.deepEqual([...paths.keys()], [uuid(5)]);
  });

  test('no volume asked for: no call', async () => {
    const { pages, nodes } = await listing(3, 4, []);
    assert.deepEqual([pages.length, nodes], [0, 0]);
  });

  test('a backend that ignores offsetUUID is a malformed answer (backend_error), not an endless loop', async () => {
    await assert.rejects(listing(10, 4, [9], { ignoreOffset: true }), (e: unknown) => {
      assert.ok(isDriverError(e));
      assert.equal(e.code, 'backend_error');
      assert.match(e.message, /offsetUUID ignored/);
      return true;
    });
  });

  test('listPageSize is 1..1000', () => {
    for (const bad of [0, 1001, 2.5])
      assert.throws(() => new LightosBackend({ endpoints: ['http://127.0.0.1:1'], listPageSize: bad }), /listPageSize/);
  });
});
