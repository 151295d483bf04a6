import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeHost } from './host/testing/fake-host.ts';
import {
  DEFAULT_TUNABLES,
  classify,
  connectArgs,
  disconnectArgs,
  normalizeListSubsys,
  parseConnectedDevice,
} from './nvme-cli.ts';

const r = (code: number, stdout = '', stderr = '') => ({ code, stdout, stderr });

describe('classify', () => {
  const cases: [string, ReturnType<typeof r>, string][] = [
    ['success', r(0, 'connecting to device: nvme3\n'), 'ok'],
    ['1.x EALREADY exit code, no text', r(114), 'already-connected'],
    ['exit 70', r(70), 'already-connected'],
    ['2.0 EALREADY text', r(1, '', 'no controller found: Operation already in progress\n'), 'already-connected'],
    ['2.4+ stderr', r(1, '', 'already connected\n'), 'already-connected'],
    ['… or stdout', r(1, 'already connected\n'), 'already-connected'],
    ['refused', r(1, '', 'could not add new controller: failed to write to nvme-fabrics device\n'), 'failed'],
    ['disconnect -d failure with exit 0', r(0, '', 'Failed to disconnect nvme1: Device or resource busy\n'), 'failed'],
    ['not installed', r(127, '', 'nvme: ENOENT'), 'not-installed'],
    ['timeout', r(124, '', 'nvme: timed out'), 'timeout'],
  ];
  for (const [name, res, kind] of cases) it(name, () => assert.equal(classify(res).kind, kind));

  it('carries the first message line', () => {
    assert.deepEqual(classify(r(1, '', '\n  Failed to write to /dev/nvme-fabrics: Connection refused\nmore\n')), {
      kind: 'failed',
      message: 'Failed to write to /dev/nvme-fabrics: Connection refused',
    });
  });
});

describe('commands', () => {
  it('builds connect with long options only, underscores for fast_io_fail_tmo, never -D or -o', () => {
    const args = connectArgs(
      'nqn.x',
      { address: 'fd00::1', port: 4421, transport: 'tcp' },
      { ...DEFAULT_TUNABLES, fastIoFailTmo: 0, nrIoQueues: 8 },
      'nqn.host',
    );
    assert.deepEqual(args, [
      'connect',
      '-t',
      'tcp',
      '-a',
      'fd00::1',
      '-s',
      '4421',
      '-n',
      'nqn.x',
      '--keep-alive-tmo=30',
      '--reconnect-delay=10',
      '--ctrl-loss-tmo=-1',
      '--fast_io_fail_tmo=0',
      '--nr-io-queues=8',
      '-q',
      'nqn.host',
    ]);
    assert.deepEqual(disconnectArgs('nvme4'), ['disconnect', '-d', 'nvme4']);
  });

  it('reads the device from every connect output form', () => {
    assert.equal(parseConnectedDevice('{\n  "device" : "nvme2"\n}'), 'nvme2');
    assert.equal(parseConnectedDevice('device: nvme5\n'), 'nvme5');
    assert.equal(parseConnectedDevice('connecting to device: nvme11\n'), 'nvme11');
    assert.equal(parseConnectedDevice(''), null);
  });
});

describe('normalizeListSubsys', () => {
  it('folds the 1.x object root and the 2.x host-array root into one shape', () => {
    const v1 = {
      Subsystems: [
        {
          Name: 'nvme-subsys0',
          NQN: 'nqn.a',
          Paths: [{ Name: 'nvme0', Transport: 'tcp', Address: 'traddr=10.0.0.1 trsvcid=4420', State: 'live' }],
        },
      ],
    };
    const v2 = [
      {
        HostNQN: 'nqn.host',
        HostID: 'id',
        Subsystems: [
          {
            Name: 'nvme-subsys0',
            NQN: 'nqn.a',
            IOPolicy: 'numa',
            Paths: [
              {
                Name: 'nvme0',
                Transport: 'tcp',
                Address: 'traddr=10.0.0.1,trsvcid=4420,src_addr=10.0.0.9',
                State: 'live',
                ANAState: 'optimized',
              },
            ],
          },
        ],
      },
    ];
    const a = normalizeListSubsys(v1);
    const b = normalizeListSubsys(v2);
    assert.deepEqual(a[0]!.paths[0], {
      name: 'nvme0',
      transport: 'tcp',
      address: 'traddr=10.0.0.1 trsvcid=4420',
      state: 'live',
      anaState: null,
    });
    assert.equal(a[0]!.hostNqn, null);
    assert.equal(b[0]!.hostNqn, 'nqn.host');
    assert.equal(b[0]!.paths[0]!.anaState, 'optimized');
    assert.deepEqual(normalizeListSubsys(null), []);
    assert.deepEqual(normalizeListSubsys([{ HostNQN: 'h' }]), []);
  });

  it('matches what the fake answers as 1.x and 2.x', async () => {
    for (const version of ['1', '2'] as const) {
      const host = new FakeHost({ nvmeCli: version });
      host.fabric.addSubsystem('nqn.a', [{ address: '10.0.0.1' }]);
      host.fabric.addNamespace('nqn.a', { nsid: 1, uuid: '4c5e2f3a-1b2c-4d5e-8f90-a1b2c3d4e5f6' });
      await host.run('nvme', ['connect', '-t', 'tcp', '-a', '10.0.0.1', '-s', '4420', '-n', 'nqn.a']);
      const out = await host.run('nvme', ['list-subsys', '-o', 'json']);
      const [s] = normalizeListSubsys(JSON.parse(out.stdout));
      assert.equal(s!.nqn, 'nqn.a', version);
      assert.deepEqual(
        s!.paths.map((p) => [p.name, p.state]),
        [['nvme0', 'live']],
        version,
      );
    }
  });
});
