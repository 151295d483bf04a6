/**
 * Guest scenario `nvmet-native`: the simulator's nvmet data plane against the real 6.1 target,
 * with the kernel's native NVMe multipath as the initiator.
 *
 * Three nodes (ports 127.0.0.1:4420–4422), one 64 MiB volume in its own ANA group (node 1
 * optimized, 2 non-optimized, 3 inaccessible); connect all three portals; one head device with
 * the volume's UUID and three paths with the expected ANA states; O_DIRECT I/O; ANA flip;
 * online resize; node down and up; host ACL; disconnect and teardown. Facts seen on the way go
 * to observations.json for the report.
 */
import { readlinkSync } from 'node:fs';
import { NvmetDataPlane } from '../../../src/sim/nvmet/nvmet-data-plane.ts';
import type { SimNodeEndpoint } from '../../../src/sim/data-plane.ts';
import { check, checkEqual, list, observe, readSys, scenario, sh, step, waitFor } from './lib.ts';
import {
  controllerOf,
  controllers,
  directIoRoundTrip,
  HOST_NQN,
  jsonOrText,
  nvmeConnect,
  nvmeDisks,
  pathDevices,
  sysAttrs,
} from './nvme.ts';
import { MiB } from '../../../src/shared/units.ts';

const NQN = 'nqn.2016-01.com.lightbitslabs:uuid:0d6c3b1e-5a7f-4c2d-8e9b-1f2a3b4c5d6e';
const VOL = '6f1c2d3e-4b5a-4c7d-9e8f-0a1b2c3d4e5f';
const NODES: SimNodeEndpoint[] = [0, 1, 2].map((index) => ({
  nodeId: `node-${index + 1}`,
  index,
  address: '127.0.0.1',
  port: 4420 + index,
}));

/** ANA state of each per-path device, keyed by the trsvcid of its controller. */
function pathStates(): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const dev of pathDevices()) {
    const ctrl = controllers().find((c) => c.name === controllerOf(dev));
    if (ctrl) out[ctrl.address.trsvcid] = readSys(`/sys/block/${dev}/ana_state`);
  }
  return out;
}

function waitForStates(want: Record<string, string>, what: string) {
  return waitFor(
    what,
    () => (JSON.stringify(pathStates()) === JSON.stringify(want) ? true : undefined),
    15_000,
    pathStates,
  );
}

await scenario('nvmet-native', async () => {
  observe('kernel', readSys('/proc/sys/kernel/osrelease'));
  observe('nvme_core.multipath', readSys('/sys/module/nvme_core/parameters/multipath'));
  observe('nvme version', (await sh('nvme', ['version'])).trim());

  const pingUrl = process.env.PORTALIS_HOST_PING_URL;
  if (pingUrl) {
    await step('the host is reachable at 10.0.2.2 (QEMU user network)', async () => {
      const res = await fetch(pingUrl, { signal: AbortSignal.timeout(10_000) });
      checkEqual(await res.text(), process.env.PORTALIS_HOST_PING_TOKEN, 'token served by the host');
    });
  }

  const plane = new NvmetDataPlane({ dataDir: '/tmp/portalis-nvmet' });
  await step('nvmet plane: subsystem, 3 ports, host ACL, 64 MiB volume in its own ANA group', async () => {
    await plane.start(NQN, NODES);
    await plane.setAllowedHosts([HOST_NQN]);
    const spec = {
      volumeUuid: VOL,
      nsid: 1,
      sizeBytes: 64 * MiB,
      ana: { 'node-1': 'optimized', 'node-2': 'non-optimized', 'node-3': 'inaccessible' },
    } as const;
    await plane.addNamespace(spec);
    await plane.addNamespace(spec); // idempotent against the real configfs too
  });
  const group = plane.volume(VOL)!.anaGroup;
  const nsDir = `/sys/kernel/config/nvmet/subsystems/${NQN}/namespaces/1`;
  observe('configfs namespace attributes', list(nsDir));
  observe(
    'configfs namespace',
    sysAttrs(nsDir, ['ana_grpid', 'buffered_io', 'device_nguid', 'device_path', 'device_uuid', 'enable']),
  );
  observe('revalidate_size exists', list(nsDir).includes('revalidate_size'));

  const stranger = {
    hostNqn: 'nqn.2014-08.org.nvmexpress:uuid:00000000-dead-4bad-8bad-000000000000',
    hostId: '00000000-dead-4bad-8bad-000000000000',
  };
  await step('a host outside allowed_hosts cannot connect', async () => {
    // Before any allowed connect: nvme-cli 2.3 answers "already connected" without asking the
    // target once any controller to that portal and subsystem exists, whatever the host NQN.
    const t0 = performance.now();
    const denied = await nvmeConnect({ nqn: NQN, address: '127.0.0.1', port: 4420, ...stranger });
    observe('nvme connect, host not allowed', {
      code: denied.code,
      stdout: denied.stdout.trim(),
      stderr: denied.stderr.trim(),
      ms: Math.round(performance.now() - t0),
    });
    check(denied.code !== 0, 'the connect fails');
    checkEqual(controllers(NQN).length, 0, 'controllers after a refused connect');
  });

  await step('connect 3 portals', async () => {
    const outputs: Record<string, unknown> = {};
    for (const n of NODES) {
      const t0 = performance.now();
      const r = await nvmeConnect({ nqn: NQN, address: n.address, port: n.port });
      outputs[n.port] = {
        code: r.code,
        stdout: jsonOrText(r.stdout),
        stderr: r.stderr.trim(),
        ms: Math.round(performance.now() - t0),
      };
      checkEqual(r.code, 0, `nvme connect to ${n.port}`);
    }
    observe('nvme connect -o json', outputs);
  });

  await step('a repeated connect fails with "already connected"', async () => {
    const again = await nvmeConnect({ nqn: NQN, address: '127.0.0.1', port: 4420 });
    observe('nvme connect, already connected', {
      code: again.code,
      stdout: again.stdout.trim(),
      stderr: again.stderr.trim(),
    });
    check(again.code !== 0, 'a second connect to the same portal fails');
    const other = await nvmeConnect({ nqn: NQN, address: '127.0.0.1', port: 4420, ...stranger });
    observe('nvme connect, other host NQN, portal already connected', {
      code: other.code,
      stderr: other.stderr.trim(),
    });
  });

  const head = await step('one head device with the volume UUID', () =>
    waitFor('the head device', () => {
      const heads = nvmeDisks().filter((d) => readSys(`/sys/block/${d}/uuid`) === VOL);
      return heads.length === 1 ? heads[0] : undefined;
    }),
  );
  checkEqual(head, 'nvme0n1', 'head device name on a fresh guest');
  observe('head sysfs', {
    ...sysAttrs(`/sys/block/${head}`, ['uuid', 'nguid', 'wwid', 'nsid', 'size', 'ro', 'removable']),
    'queue/logical_block_size': readSys(`/sys/block/${head}/queue/logical_block_size`),
    'device ->': readlinkSync(`/sys/block/${head}/device`),
  });
  observe('/sys/block', list('/sys/block'));

  await step('three paths with their ports ANA states', async () => {
    await waitForStates(
      { '4420': 'optimized', '4421': 'non-optimized', '4422': 'inaccessible' },
      'initial path states',
    );
    const paths: Record<string, unknown> = {};
    for (const dev of pathDevices()) {
      const ctrl = controllerOf(dev);
      checkEqual(readSys(`/sys/block/${dev}/ana_grpid`), String(group), `${dev} ana_grpid`);
      paths[dev] = { controller: ctrl, ...sysAttrs(`/sys/block/${dev}`, ['ana_grpid', 'ana_state', 'uuid', 'nsid']) };
    }
    observe('path devices', paths);
    observe(
      'controllers',
      Object.fromEntries(
        controllers(NQN).map((c) => [
          c.name,
          sysAttrs(`/sys/class/nvme/${c.name}`, [
            'address',
            'state',
            'transport',
            'subsysnqn',
            'hostnqn',
            'hostid',
            'cntlid',
            'model',
            'serial',
            'firmware_rev',
            'ctrl_loss_tmo',
            'reconnect_delay',
            'fast_io_fail_tmo',
            'kato',
            'numa_node',
            'queue_count',
            'sqsize',
          ]),
        ]),
      ),
    );
    observe(
      'nvme-subsystem',
      sysAttrs('/sys/class/nvme-subsystem/nvme-subsys0', [
        'subsysnqn',
        'iopolicy',
        'model',
        'serial',
        'firmware_rev',
        'subsystype',
      ]),
    );
    observe('nvme list -o json', jsonOrText(await sh('nvme', ['list', '-o', 'json'])));
    observe('nvme list-subsys -o json', jsonOrText(await sh('nvme', ['list-subsys', '-o', 'json'])));
  });

  await step('O_DIRECT write and read back 16 MiB through the head', async () => {
    observe('O_DIRECT 16 MiB', await directIoRoundTrip(`/dev/${head}`, 16, 'native'));
  });

  await step('ANA flip: optimized moves to node 2', async () => {
    const t0 = performance.now();
    await plane.setAna(VOL, { 'node-1': 'non-optimized', 'node-2': 'optimized', 'node-3': 'inaccessible' });
    await waitForStates(
      { '4420': 'non-optimized', '4421': 'optimized', '4422': 'inaccessible' },
      'flipped path states',
    );
    observe('ANA flip seen in sysfs after ms', Math.round(performance.now() - t0));
  });

  await step('online resize 64 → 96 MiB', async () => {
    const t0 = performance.now();
    await plane.resizeNamespace(VOL, 96 * MiB);
    await waitFor('the head to grow', () =>
      readSys(`/sys/block/${head}/size`) === String((96 * MiB) / 512) ? true : undefined,
    );
    observe('resize seen in sysfs after ms', Math.round(performance.now() - t0));
  });

  await step('node 2 down: its path drops, I/O goes on; up: live and optimized again', async () => {
    const port2 = () => controllers(NQN).find((c) => c.address.trsvcid === '4421');
    let t0 = performance.now();
    await plane.setNodeUp('node-2', false);
    const seen = await waitFor('the node-2 controller to leave live', () => {
      const s = port2()?.state;
      return s && s !== 'live' ? s : undefined;
    });
    observe('node down: controller state', {
      state: seen,
      ms: Math.round(performance.now() - t0),
      paths: pathStates(),
    });
    await sh('dd', [`if=/dev/${head}`, 'of=/dev/null', 'bs=1M', 'count=4', 'iflag=direct', 'status=none']);
    t0 = performance.now();
    await plane.setNodeUp('node-2', true);
    await waitFor(
      'the node-2 controller to be live again',
      () => (port2()?.state === 'live' ? true : undefined),
      20_000,
      port2,
    );
    await waitForStates(
      { '4420': 'non-optimized', '4421': 'optimized', '4422': 'inaccessible' },
      'states after node up',
    );
    observe('node up: live again after ms', Math.round(performance.now() - t0));
  });

  await step('revoking the host leaves connected controllers alone', async () => {
    await plane.setAllowedHosts([]);
    const states = controllers(NQN).map((c) => c.state);
    observe('controller states after revoking the host', states);
    checkEqual(states, ['live', 'live', 'live'], 'controller states after revoking the host');
  });

  await step('disconnect', async () => {
    const r = await sh('nvme', ['disconnect', '-n', NQN]);
    observe('nvme disconnect -n', r.trim());
    await waitFor('controllers to go', () => (controllers(NQN).length === 0 ? true : undefined));
    check(!list('/sys/block').some((d) => d.startsWith('nvme')), 'no NVMe block devices left');
  });

  await step('tear the target down', async () => {
    await plane.stop();
    for (const d of ['subsystems', 'ports', 'hosts'])
      checkEqual(list(`/sys/kernel/config/nvmet/${d}`), [], `configfs ${d}`);
    checkEqual(list('/tmp/portalis-nvmet'), [], 'backing files');
  });
});
