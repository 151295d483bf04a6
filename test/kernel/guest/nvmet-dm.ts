/**
 * Guest scenario `nvmet-dm` (booted with `nvme_core.multipath=N`): the nvmet data plane with two
 * nodes, two connects giving two plain namespaces with the same WWID, and multipathd (with
 * systemd-udevd) assembling `/dev/mapper/uuid.<volume uuid>` from them; O_DIRECT I/O through the
 * map; flush, disconnect, teardown. Observations (multipathd's JSON, sysfs holders) go to
 * observations.json.
 */
import { existsSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import type { SimNodeEndpoint } from '../../../src/sim/data-plane.ts';
import { NvmetDataPlane } from '../../../src/sim/nvmet/nvmet-data-plane.ts';
import { check, checkEqual, list, observe, readSys, scenario, sh, shAny, step, waitFor } from './lib.ts';
import { mapPaths, showMaps, startMultipathd, stopMultipathd } from './multipathd.ts';
import { controllerOf, controllers, directIoRoundTrip, nvmeConnect, nvmeDisks, sysAttrs } from './nvme.ts';
import { MiB } from '../../../src/shared/units.ts';

const NQN = 'nqn.2016-01.com.lightbitslabs:uuid:0d6c3b1e-5a7f-4c2d-8e9b-1f2a3b4c5d6e';
const VOL = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
const MAP = `uuid.${VOL}`;
const NODES: SimNodeEndpoint[] = [0, 1].map((index) => ({
  nodeId: `node-${index + 1}`,
  index,
  address: '127.0.0.1',
  port: 4420 + index,
}));

await scenario('nvmet-dm', async () => {
  checkEqual(readSys('/sys/module/nvme_core/parameters/multipath'), 'N', 'nvme_core.multipath');
  observe('multipath-tools', (await shAny('multipath', ['-h'])).stderr.split('\n')[0]);

  const multipathd = await step('systemd-udevd and multipathd', () =>
    startMultipathd('defaults {\n  user_friendly_names no\n  find_multipaths no\n}\n'),
  );

  const plane = new NvmetDataPlane({ dataDir: '/tmp/portalis-nvmet', allowAnyHost: true });
  await step('nvmet plane: 2 ports, 64 MiB volume (node 1 optimized, node 2 non-optimized)', async () => {
    await plane.start(NQN, NODES);
    await plane.addNamespace({
      volumeUuid: VOL,
      nsid: 1,
      sizeBytes: 64 * MiB,
      ana: { 'node-1': 'optimized', 'node-2': 'non-optimized' },
    });
  });

  const disks = await step('two connects give two namespaces with the same WWID', async () => {
    for (const n of NODES)
      checkEqual((await nvmeConnect({ nqn: NQN, address: n.address, port: n.port })).code, 0, `connect ${n.port}`);
    return waitFor('two namespaces with the volume WWID', () => {
      const d = nvmeDisks().filter((x) => readSys(`/sys/block/${x}/wwid`) === MAP);
      return d.length === 2 ? d : undefined;
    });
  });
  observe(
    'path namespaces',
    Object.fromEntries(
      disks.map((d) => [d, sysAttrs(`/sys/block/${d}`, ['wwid', 'uuid', 'nsid', 'ana_state', 'ana_grpid'])]),
    ),
  );
  observe(
    'controllers',
    controllers(NQN).map((c) => ({ name: c.name, state: c.state, address: c.address })),
  );

  const dm = await step('multipathd assembles /dev/mapper/uuid.<uuid> with both paths active', async () => {
    const t0 = performance.now();
    const json = await waitFor(
      'the map with two active paths',
      async () => {
        const j = await showMaps();
        const paths = mapPaths(j, MAP);
        return existsSync(`/dev/mapper/${MAP}`) && paths?.length === 2 && paths.every((p) => p.dm_st === 'active')
          ? j
          : undefined;
      },
      30_000,
      () => readSys('/proc/partitions'),
    );
    observe('map assembled after ms', Math.round(performance.now() - t0));
    observe('multipathd show maps json', json);
    // multipathd's ANA prioritizer: the path through node 1 (optimized) ranks above node 2's.
    const portOf = (dev: string) => controllers(NQN).find((c) => c.name === controllerOf(dev))?.address.trsvcid;
    const pri = Object.fromEntries(mapPaths(json, MAP)!.map((p) => [portOf(p.dev), p.pri]));
    observe('path priority by port', pri);
    check(pri['4420'] > pri['4421'], `the optimized path has the higher priority: ${JSON.stringify(pri)}`);
    observe('multipath -ll', (await sh('multipath', ['-ll'])).trim().split('\n'));
    const dmDev = path.basename(readlinkSync(`/dev/mapper/${MAP}`));
    observe('dm sysfs', {
      dev: dmDev,
      name: readSys(`/sys/block/${dmDev}/dm/name`),
      uuid: readSys(`/sys/block/${dmDev}/dm/uuid`),
      slaves: list(`/sys/block/${dmDev}/slaves`),
      holders: Object.fromEntries(disks.map((d) => [d, list(`/sys/block/${d}/holders`)])),
    });
    for (const d of disks) checkEqual(list(`/sys/block/${d}/holders`), [dmDev], `${d} holders`);
    return dmDev;
  });

  await step('O_DIRECT write and read back 8 MiB through the map', async () => {
    observe('O_DIRECT 8 MiB via dm', await directIoRoundTrip(`/dev/mapper/${MAP}`, 8, 'dm'));
  });

  await step('flush the map, then disconnect its paths', async () => {
    await sh('multipath', ['-f', MAP]);
    await waitFor('the map to go', () =>
      !existsSync(`/dev/mapper/${MAP}`) && !list('/sys/block').includes(dm) ? true : undefined,
    );
    const out = await sh('nvme', ['disconnect', '-n', NQN]);
    observe('nvme disconnect -n (dm)', out.trim());
    await waitFor('controllers to go', () => (controllers(NQN).length === 0 ? true : undefined));
    await sh('udevadm', ['settle', '--timeout=10']);
    checkEqual(
      list('/sys/block').filter((d) => d.startsWith('dm-') || d.startsWith('nvme')),
      [],
      'block devices left',
    );
  });

  await step('stop multipathd and udevd, tear the target down', async () => {
    await stopMultipathd(multipathd);
    await plane.stop();
    for (const d of ['subsystems', 'ports', 'hosts'])
      checkEqual(list(`/sys/kernel/config/nvmet/${d}`), [], `configfs ${d}`);
  });
});
