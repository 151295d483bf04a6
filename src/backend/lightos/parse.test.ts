import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lightosError, type LightosFailure, type Op } from './errors.ts';
import { aclHosts, aclValues, parseNvmeEndpoint, parseSizeBytes } from './parse.ts';
import { volumePathsOf } from './paths.ts';
import type { WireNode } from './parse.ts';
import { GiB } from '../../shared/units.ts';

describe('parseSizeBytes', () => {
  const ok: [unknown, number][] = [
    ['10 GiB', 10 * GiB],
    ['10 gib', 10 * GiB],
    ['10GiB', 10 * GiB],
    ['512 MiB', GiB / 2],
    ['1 TiB', 1024 * GiB],
    [10737418240, 10 * GiB],
    ['10737418240', 10 * GiB],
    ['1.5 GiB', 1.5 * GiB],
    [0, 0],
  ];
  for (const [input, bytes] of ok)
    test(`${JSON.stringify(input)} is ${bytes} bytes`, () => assert.equal(parseSizeBytes(input), bytes));
  for (const bad of ['ten', '10 GB', '', -1, null, undefined, {}, '10 gib extra']) {
    test(`${JSON.stringify(bad)} is unreadable`, () => assert.equal(parseSizeBytes(bad), undefined));
  }
});

describe('parseNvmeEndpoint', () => {
  const ok: [string, { address: string; port: number }][] = [
    ['192.168.75.10:4420', { address: '192.168.75.10', port: 4420 }],
    ['[::1]:4420', { address: '::1', port: 4420 }],
    ['[fd00::13]:4421', { address: 'fd00::13', port: 4421 }],
    ['[::192:168:75:10]:4420', { address: '::192:168:75:10', port: 4420 }],
    ['storage-1.example:4420', { address: 'storage-1.example', port: 4420 }],
    ['10.0.0.1', { address: '10.0.0.1', port: 4420 }],
    ['fd00::1', { address: 'fd00::1', port: 4420 }],
  ];
  for (const [input, out] of ok) test(`${input}`, () => assert.deepEqual(parseNvmeEndpoint(input), out));
  for (const bad of ['[nothex]:4420', '10.0.0.1:0', '10.0.0.1:99999', '', 'a b:1', 42]) {
    test(`${JSON.stringify(bad)} is refused`, () => assert.equal(parseNvmeEndpoint(bad), undefined));
  }
});

describe('ACL sentinel', () => {
  test('ALLOW_NONE reads as no hosts, and no hosts writes as ALLOW_NONE', () => {
    assert.deepEqual(aclHosts({ values: ['ALLOW_NONE'] }), []);
    assert.deepEqual(aclHosts({ values: ['nqn.a', 'nqn.b'] }), ['nqn.a', 'nqn.b']);
    assert.deepEqual(aclHosts(undefined), []);
    assert.deepEqual(aclValues([]), { values: ['ALLOW_NONE'] });
    assert.deepEqual(aclValues(['nqn.a']), { values: ['nqn.a'] });
  });
});

describe('volumePathsOf', () => {
  const node = (uuid: string, ep: string, active = true): WireNode => ({
    uuid,
    rawEndpoint: ep,
    endpoint: parseNvmeEndpoint(ep),
    active,
  });
  const nodes = [
    node('n0', '10.0.0.1:4420'),
    node('n1', '10.0.0.2:4420'),
    node('n2', '10.0.0.3:4420'),
    node('n3', 'garbage:x'),
  ];

  test('with placement: optimized first, then non-optimized, then the unusable replicas (inactive node = inaccessible)', () => {
    const paths = volumePathsOf(
      [...nodes.slice(0, 2), node('n2', '10.0.0.3:4420', false)],
      [
        { nodeUuid: 'n1', anaState: 'non-optimized' },
        { nodeUuid: 'n0', anaState: 'inaccessible' },
        { nodeUuid: 'n2', anaState: 'optimized' },
      ],
    );
    assert.deepEqual(
      paths.map((p) => [p.nodeId, p.anaState]),
      [
        ['n1', 'non-optimized'],
        ['n0', 'inaccessible'],
        ['n2', 'inaccessible'],
      ],
    );
    const two = volumePathsOf(nodes, [
      { nodeUuid: 'n1', anaState: 'non-optimized' },
      { nodeUuid: 'n2', anaState: 'optimized' },
    ]);
    assert.deepEqual(
      two.map((p) => [p.nodeId, p.anaState]),
      [
        ['n2', 'optimized'],
        ['n1', 'non-optimized'],
      ],
    );
  });

  test('without placement: every active node with a readable endpoint, anaState unknown', () => {
    const bad: string[] = [];
    const paths = volumePathsOf(nodes, undefined, (n) => bad.push(n.uuid));
    assert.deepEqual(
      paths.map((p) => [p.nodeId, p.anaState]),
      [
        ['n0', 'unknown'],
        ['n1', 'unknown'],
        ['n2', 'unknown'],
      ],
    );
    assert.deepEqual(bad, ['n3'], 'an unreadable endpoint is reported');
  });
});

describe('lightosError', () => {
  const op: Op = { name: 'grantAccess', subject: 'volume v-1', deadline: 0 };
  const table: [LightosFailure, string][] = [
    [
      { kind: 'unreachable', attempts: [{ endpoint: 'http://a', reason: 'ECONNREFUSED', timedOut: false }] },
      'backend_unavailable',
    ],
    [
      {
        kind: 'timeout',
        attempts: [{ endpoint: 'http://a', reason: 'timed out', timedOut: true }],
        requestTimeoutMs: 5,
      },
      'backend_timeout',
    ],
    [{ kind: 'stuck', waitingFor: 'x', state: 'Creating', waitedMs: 5 }, 'backend_timeout'],
    [{ kind: 'conflict', status: 412, waitedMs: 5 }, 'backend_timeout'],
    [{ kind: 'http', status: 503, endpoint: 'http://a', message: 'm' }, 'backend_error'],
    [{ kind: 'http', status: 401, endpoint: 'http://a', message: 'm' }, 'backend_rejected'],
    [{ kind: 'http', status: 403, endpoint: 'http://a', message: 'm' }, 'backend_rejected'],
    [{ kind: 'http', status: 422, endpoint: 'http://a', message: 'm' }, 'backend_rejected'],
    [
      { kind: 'http', status: 404, endpoint: 'http://a', message: 'm', notFound: 'volume_not_found' },
      'volume_not_found',
    ],
    [{ kind: 'http', status: 404, endpoint: 'http://a', message: 'm' }, 'backend_rejected'],
    [{ kind: 'malformed', endpoint: 'http://a', reason: 'r' }, 'backend_error'],
    [{ kind: 'notFound', what: 'volume v-1', code: 'volume_not_found' }, 'volume_not_found'],
    [{ kind: 'vanished', what: 'volume v-1', during: 'x' }, 'backend_error'],
    [{ kind: 'endState', what: 'volume v-1', state: 'Failed', cleanedUp: true }, 'backend_error'],
    [{ kind: 'invalid', message: 'no' }, 'invalid_request'],
  ];
  for (const [failure, code] of table) {
    test(`${failure.kind}${'status' in failure ? ` ${failure.status}` : ''} → ${code}`, () => {
      const e = lightosError(op, failure);
      assert.equal(e.code, code);
      assert.ok(e.message.startsWith('LightOS grantAccess(volume v-1): '), e.message);
      assert.equal(e.details?.operation, 'grantAccess');
      assert.equal(e.details?.backend, 'lightos');
    });
  }

  test('the stuck message names the state', () => {
    assert.match(
      lightosError(op, { kind: 'stuck', waitingFor: 'Available', state: 'Creating', waitedMs: 100 }).message,
      /still in state Creating/,
    );
  });
});
