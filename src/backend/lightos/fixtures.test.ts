import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, beforeEach, describe, test } from 'node:test';
import { isDriverError } from '../../driver/errors.ts';
import { LightosBackend } from './backend.ts';
import { type FakeAnswer, type FakeLightos, type RecordedRequest, startFakeLightos } from './testing/fake-lightos.ts';

const FIXTURES = new URL('../../../test/fixtures/lightos/', import.meta.url);
const fixture = (name: string): any => JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8'));

const VOLUME = fixture('volume.json');
const VOLUME_ACL = fixture('volume-with-acl.json');
const HOST = 'nqn.2014-08.org.nvmexpress:uuid:77777777-7777-4777-8777-777777777777';
const VOLS = '/api/v2/projects/default/volumes';

/** Recorded answers, keyed by "METHOD path"; the volume is mutable so PUTs show up in later GETs. */
let volume: any;
let override: ((r: RecordedRequest) => FakeAnswer | undefined) | undefined;
let fake: FakeLightos;
let backend: LightosBackend;

function answer(r: RecordedRequest): FakeAnswer {
  const o = override?.(r);
  if (o) return o;
  const key = `${r.method} ${r.url}`;
  switch (key) {
    case 'GET /api/v2/clusterinfo':
      return { body: fixture('clusterinfo.json') };
    case 'GET /api/v2/cluster':
      return { body: fixture('cluster.json') };
    case 'GET /api/v2/nodes':
      return { body: fixture('nodes.json') };
    case `GET ${VOLS}/${volume.UUID}`:
      return { body: volume };
    case `GET ${VOLS}/?name=${volume.name}`:
      return { body: volume };
    case `GET ${VOLS}/?name=${VOLUME_ACL.name}`:
      return { body: VOLUME_ACL };
    case `PUT ${VOLS}/${volume.UUID}`: {
      const body = r.body as { acl: { values: string[] } };
      volume = { ...volume, acl: body.acl, ETag: String(Number(volume.ETag) + 1) };
      return { body: volume };
    }
    default:
      return { status: 404, body: { code: 5, message: `no fixture for ${key}` } };
  }
}

before(async () => {
  fake = await startFakeLightos(answer);
});
after(() => fake.close());
beforeEach(() => {
  volume = structuredClone(VOLUME);
  override = undefined;
  fake.requests.length = 0;
  backend = new LightosBackend({
    endpoints: [fake.url],
    pollIntervalMs: 10,
    operationTimeoutMs: 2000,
    random: () => 0,
  });
});

describe('parsing recorded LightOS answers', () => {
  test('cluster info gives the cluster UUID and subsystem NQN', async () => {
    assert.deepEqual(await backend.clusterInfo(), {
      uuid: '926e6df8-73e1-11ec-a624-07ba3880f6cc',
      subsystemNqn: 'nqn.2014-08.org.nvmexpress:NVMf:uuid:f4a89ce0-9fc2-4900-bfa3-00ad27995e7b',
    });
  });

  test('a volume: byte-string size, ALLOW_NONE as an empty ACL, nsid, QoS policy', async () => {
    assert.deepEqual(await backend.getVolume(VOLUME.UUID), {
      uuid: VOLUME.UUID,
      name: VOLUME.name,
      sizeGb: 10,
      replicas: 3,
      compression: false,
      state: 'Available',
      acl: [],
      nsid: 12,
      qosPolicyUuid: '2a9c1f4e-7b3d-4e8a-9f61-5d2c0b7a8e93',
    });
  });

  test('an older-style volume: "20 GiB", numbers as strings, "True", a host in the ACL', async () => {
    const v = await backend.getVolumeByName(VOLUME_ACL.name);
    assert.deepEqual(v, {
      uuid: VOLUME_ACL.UUID,
      name: VOLUME_ACL.name,
      sizeGb: 20,
      replicas: 2,
      compression: true,
      state: 'Available',
      acl: ['nqn.2014-08.org.nvmexpress:uuid:36363636-3636-4336-8336-363636363636'],
      nsid: 13,
      sourceSnapshotUuid: '5e0c9a1b-2d3f-4a5b-8c6d-7e8f9a0b1c2d',
    });
  });

  test('capacity comes from the estimated logical storage statistics', async () => {
    assert.deepEqual(await backend.capacity(), { totalGb: 32768, freeGb: 31744 });
  });

  test('a tenant JWT refused cluster statistics (403) means unknown capacity, not an error', async () => {
    override = (r) =>
      r.url === '/api/v2/cluster' ? { status: 403, body: { code: 7, message: 'permission denied' } } : undefined;
    assert.deepEqual(await backend.capacity(), { totalGb: null, freeGb: null });
  });
});

describe('paths without replicaPlacement (a real LightOS)', () => {
  test('every node: Active ones in API order as unknown, IPv6 unbracketed, the Inactive one last as inaccessible', async () => {
    const paths = await backend.volumePaths(VOLUME.UUID);
    assert.deepEqual(paths, [
      {
        nodeId: '926e6df8-73e1-11ec-a624-000000000001',
        portal: { address: '192.168.75.10', port: 4420, transport: 'tcp' },
        anaState: 'unknown',
      },
      {
        nodeId: '926e6df8-73e1-11ec-a624-000000000002',
        portal: { address: '::192:168:75:11', port: 4420, transport: 'tcp' },
        anaState: 'unknown',
      },
      {
        nodeId: '926e6df8-73e1-11ec-a624-000000000004',
        portal: { address: 'fd00::13', port: 4421, transport: 'tcp' },
        anaState: 'unknown',
      },
      {
        nodeId: '926e6df8-73e1-11ec-a624-000000000003',
        portal: { address: '192.168.75.12', port: 4420, transport: 'tcp' },
        anaState: 'inaccessible',
      },
    ]);
  });
});

describe('what the adapter sends', () => {
  test('grant: Accept JSON, no Authorization without a JWT, If-Match with the ETag, ALLOW_NONE dropped', async () => {
    assert.deepEqual(await backend.grantAccess(VOLUME.UUID, HOST), { changed: true });
    const put = fake.requests.find((r) => r.method === 'PUT')!;
    assert.equal(put.headers['if-match'], '7');
    assert.equal(put.headers.accept, 'application/json');
    assert.equal(put.headers['content-type'], 'application/json');
    assert.equal(put.headers.authorization, undefined);
    assert.deepEqual(put.body, { acl: { values: [HOST] } });
  });

  test('revoking the last host writes the ALLOW_NONE sentinel', async () => {
    volume = { ...volume, acl: { values: [HOST] } };
    assert.deepEqual(await backend.revokeAccess(VOLUME.UUID, HOST), { changed: true });
    const put = fake.requests.find((r) => r.method === 'PUT')!;
    assert.deepEqual(put.body, { acl: { values: ['ALLOW_NONE'] } });
  });

  test('a 400 that speaks of the ETag is retried like a 412 (LightOS gateway precondition)', async () => {
    let refused = 0;
    override = (r) =>
      r.method === 'PUT' && refused++ === 0 ? { status: 400, body: { code: 9, message: 'etag mismatch' } } : undefined;
    assert.deepEqual(await backend.grantAccess(VOLUME.UUID, HOST), { changed: true });
    assert.equal(fake.requests.filter((r) => r.method === 'PUT').length, 2);
  });

  test('create sends the Cinder body: "<N> gib", replicaCount string, "True"/"False", ALLOW_NONE', async () => {
    override = (r) => {
      if (r.method === 'GET' && r.url.startsWith(`${VOLS}/?name=`))
        return { status: 404, body: { code: 5, message: 'not found' } };
      if (r.method === 'POST') return { body: { ...volume, name: 'volume-new' } };
      return undefined;
    };
    await backend.createVolume({ name: 'volume-new', sizeGb: 10, replicas: 3, compression: false });
    const post = fake.requests.find((r) => r.method === 'POST')!;
    assert.equal(post.url, VOLS);
    assert.deepEqual(post.body, {
      name: 'volume-new',
      size: '10 gib',
      replicaCount: '3',
      compression: 'False',
      acl: { values: ['ALLOW_NONE'] },
      IPAcl: { values: ['ALLOW_ANY'] },
    });
  });

  test('the JWT goes in Authorization: Bearer when configured', async () => {
    const b = new LightosBackend({ endpoints: [fake.url], jwt: 'tenant-jwt', random: () => 0 });
    await b.ping();
    assert.equal(fake.requests.at(-1)!.headers.authorization, 'Bearer tenant-jwt');
  });
});

describe('malformed answers', () => {
  const cases: [string, FakeAnswer][] = [
    ['a body that is not JSON', { body: '<html>gateway</html>' }],
    ['a volume without UUID', { body: { name: 'x', state: 'Available', size: '1' } }],
    ['a volume with an unreadable size', { body: { ...VOLUME, size: 'lots' } }],
  ];
  for (const [what, a] of cases) {
    test(`${what} is backend_error`, async () => {
      override = (r) => (r.method === 'GET' && r.url.startsWith(VOLS) ? a : undefined);
      await assert.rejects(backend.getVolume(VOLUME.UUID), (e: unknown) => {
        assert.ok(isDriverError(e, 'backend_error'), String(e));
        assert.match(e.message, /^LightOS getVolume\(volume .*\): malformed answer/);
        return true;
      });
    });
  }
});
