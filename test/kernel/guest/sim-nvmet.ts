/**
 * Guest scenario `sim-nvmet`: service → simulator → nvmet → kernel initiator, with no target
 * configured by hand. In the guest it starts `portalis sim` with the nvmet data plane and
 * `portalis serve` (its PostgreSQL runs on the host, reached at 10.0.2.2) through the real CLI,
 * then, through their REST APIs only:
 *
 * 1. creates a 3-replica volume and calls initialize_connection with a native-multipath
 *    connector whose nqn is the guest's /etc/nvme/hostnqn; the namespace, its ANA group and the
 *    host's access are in configfs;
 * 2. connects the returned portals with nvme-cli exactly as given; one head device carries the
 *    returned vol_uuid, with three paths whose ANA states are the simulator's;
 * 3. O_DIRECT write and read back;
 * 4. takes the optimized node down through the fault API while writes run: no write fails, the
 *    optimized path moves to the node the simulator promoted; brings it back: live again,
 *    non-optimized; every block written verifies, and the kernel logged no I/O error;
 * 5. extends the volume through the LightOS API (PUT size with If-Match; a stale ETag gets
 *    412): the head shows the new size, old data intact, new space usable;
 * 6. terminate_connection revokes the host in configfs; nvme disconnect leaves no controller;
 * 7. deletes the volume through the LightOS API: namespace, ANA groups and backing file go.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { check, checkEqual, list, observe, readSys, scenario, sh, step, waitFor } from './lib.ts';
import { BackgroundWriter, verifyChunks, writeChunk, writeChunks } from './io.ts';
import {
  controllers,
  headByUuid,
  hostIdentity,
  ioErrorsSince,
  jsonOrText,
  kernelLog,
  nvmeConnect,
  nvmeDisks,
  pathViews,
  type PathView,
} from './nvme.ts';
import type { Connector } from './rest.ts';
import { startStack, type Stack } from './stack.ts';
import { GiB } from '../../../src/shared/units.ts';

const NVMET = '/sys/kernel/config/nvmet';

interface SimNode {
  index: number;
  uuid: string;
  nvmeEndpoint: string;
  up: boolean;
}

/** The simulator's view of the volume: its ANA state per node, keyed by the node's NVMe port. */
async function simAnaByPort(stack: Stack, volUuid: string): Promise<Record<string, string>> {
  const state = await stack.simApi.state();
  const vol = state.volumes.find((v: { uuid: string }) => v.uuid === volUuid);
  check(vol, `the simulator knows volume ${volUuid}`);
  const out: Record<string, string> = {};
  for (const n of state.nodes as SimNode[]) out[n.nvmeEndpoint.split(':').pop()!] = vol.ana[n.uuid];
  return out;
}

function anaByPort(views: PathView[]): Record<string, string | null> {
  return Object.fromEntries(views.map((v) => [v.trsvcid, v.anaState]).sort());
}

const sorted = (o: Record<string, unknown>) => JSON.stringify(Object.fromEntries(Object.entries(o).sort()));

await scenario('sim-nvmet', async () => {
  const databaseUrl = process.env.PORTALIS_KERNEL_DATABASE_URL;
  check(databaseUrl, 'the host side passed PORTALIS_KERNEL_DATABASE_URL');
  observe('kernel', readSys('/proc/sys/kernel/osrelease'));
  observe('nvme version', (await sh('nvme', ['version'])).trim());

  const me = await step('host identity (/etc/nvme/hostnqn)', hostIdentity);
  observe('host identity', me);

  const stack = await startStack({ databaseUrl });
  observe('ready after ms (from spawn)', stack.readyMs);
  let ok = false;
  try {
    await story(stack, me);
    ok = true;
  } finally {
    const stopped = await step('stop portalis serve and portalis sim (SIGTERM)', () => stack.stop());
    observe('stopped', stopped);
    // What `portalis sim` leaves in configfs when it exits.
    observe('configfs after the simulator exited', {
      subsystems: list(`${NVMET}/subsystems`),
      ports: list(`${NVMET}/ports`),
      hosts: list(`${NVMET}/hosts`),
    });
    if (!ok) {
      console.log(`--- sim.log (tail)\n${stack.sim.tail(40)}\n--- service.log (tail)\n${stack.service.tail(40)}`);
    }
  }
});

async function story(stack: Stack, me: { hostNqn: string; hostId: string }): Promise<void> {
  const { simApi, serviceApi } = stack;
  const state0 = await simApi.state();
  const nqn: string = state0.cluster.subsystemNQN;
  const nodes: SimNode[] = state0.nodes;
  await step('the simulator set up the target: one subsystem, a port per node', () => {
    checkEqual(state0.dataPlane.kind, 'nvmet', 'data plane');
    checkEqual(list(`${NVMET}/subsystems`), [nqn], 'configfs subsystems');
    for (const n of nodes) {
      checkEqual(
        readSys(`${NVMET}/ports/${n.index + 1}/addr_trsvcid`),
        n.nvmeEndpoint.split(':').pop(),
        `port ${n.index + 1} trsvcid`,
      );
      checkEqual(list(`${NVMET}/ports/${n.index + 1}/subsystems`), [nqn], `port ${n.index + 1} serves the subsystem`);
    }
    observe('simulator dataPlane', state0.dataPlane);
  });

  // ---- 1. create and attach through the service
  const volumeId = randomUUID();
  const created = await step('POST /v1/volumes (1 GiB, 3 replicas)', () =>
    serviceApi.createVolume({ id: volumeId, size_gb: 1, replicas: 3 }),
  );
  observe('service volume', created);
  const connector: Connector = {
    nqn: me.hostNqn,
    host: 'portalis-kernel-guest',
    nvme_hostid: me.hostId,
    uuid: me.hostId,
    multipath: true,
    nvme_native_multipath: true,
  };
  const { data, attachmentId } = await step('initialize_connection (native connector)', () =>
    serviceApi.initializeConnection(volumeId, connector),
  );
  observe('connection_info.data', data);
  checkEqual(data.multipath_mode, 'native', 'multipath_mode');
  checkEqual(data.target_nqn, nqn, 'target_nqn is the cluster subsystem');
  checkEqual(data.host_nqn, me.hostNqn, 'host_nqn');
  check(typeof data.ns_id === 'string', 'ns_id is a string');
  const portals = data.portals ?? [];
  checkEqual(portals.length, 3, 'portals of a 3-replica volume');
  const volUuid = data.vol_uuid;
  const nsDir = `${NVMET}/subsystems/${nqn}/namespaces/${data.ns_id}`;
  const endpointOf = (p: [string, number, string]) => `${p[0]}:${p[1]}`;
  const nodeOf = (p: [string, number, string]) => {
    const n = nodes.find((x) => x.nvmeEndpoint === endpointOf(p));
    check(n, `portal ${endpointOf(p)} is a simulator node`);
    return n;
  };

  const group = await step('configfs: the namespace (UUID = vol_uuid), its ANA group, the host allowed', async () => {
    checkEqual(readSys(`${nsDir}/device_uuid`), volUuid, 'namespace device_uuid');
    checkEqual(readSys(`${nsDir}/enable`), '1', 'namespace enabled');
    const g = readSys(`${nsDir}/ana_grpid`)!;
    check(Number(g) >= 2, `the volume has its own ANA group (got ${g})`);
    await waitFor('the host in allowed_hosts', () =>
      list(`${NVMET}/subsystems/${nqn}/allowed_hosts`).includes(me.hostNqn) ? true : undefined,
    );
    const simAna = await simAnaByPort(stack, volUuid);
    for (const n of nodes) {
      checkEqual(
        readSys(`${NVMET}/ports/${n.index + 1}/ana_groups/${g}/ana_state`),
        simAna[n.nvmeEndpoint.split(':').pop()!],
        `ANA state of group ${g} on port ${n.index + 1}`,
      );
    }
    checkEqual(simAna[String(portals[0][1])], 'optimized', 'the first portal is the optimized one');
    observe('configfs namespace', {
      ana_grpid: g,
      device_path: readSys(`${nsDir}/device_path`),
      buffered_io: readSys(`${nsDir}/buffered_io`),
    });
    return g;
  });

  // ---- 2. connect the portals as given
  await step('nvme connect each returned portal', async () => {
    const outputs: Record<string, unknown> = {};
    for (const [address, port, transport] of portals) {
      const t0 = performance.now();
      const r = await nvmeConnect({
        nqn: data.target_nqn!,
        address,
        port,
        transport,
        hostNqn: me.hostNqn,
        hostId: me.hostId,
      });
      outputs[`${address}:${port}`] = {
        code: r.code,
        stdout: jsonOrText(r.stdout),
        stderr: r.stderr.trim(),
        ms: Math.round(performance.now() - t0),
      };
      checkEqual(r.code, 0, `nvme connect ${address}:${port}`);
    }
    observe('nvme connect', outputs);
  });
  const head = await step('one head device carries vol_uuid', () =>
    waitFor('the head device of vol_uuid', () => headByUuid(volUuid), 15_000, nvmeDisks),
  );
  const dev = `/dev/${head}`;
  checkEqual(readSys(`/sys/block/${head}/nsid`), data.ns_id, 'head nsid = ns_id');
  checkEqual(readSys(`/sys/block/${head}/size`), String(GiB / 512), 'head size (512-byte sectors)');
  await step('three paths, ANA states as the simulator says', async () => {
    const want = await simAnaByPort(stack, volUuid);
    const views = await waitFor(
      'path ANA states = the simulator',
      () => {
        const v = pathViews(head);
        return v.length === 3 && sorted(anaByPort(v)) === sorted(want) ? v : undefined;
      },
      15_000,
      () => pathViews(head),
    );
    observe('paths after connect', views);
  });

  // ---- 3. O_DIRECT I/O
  await step('O_DIRECT write and read back 8 MiB through the head', async () => {
    const writeMs = await writeChunks(dev, 0, 8, 'attach');
    const { problems, readMs } = await verifyChunks(dev, 0, 'attach', new Array(8).fill(1));
    checkEqual(problems, [], 'data read back');
    observe('O_DIRECT 8 MiB', { writeMs, readMs });
  });

  // ---- 4. failover under writes
  const optimized = nodeOf(portals[0]);
  await step('optimized node down and up through the fault API while writes run', async () => {
    const logMark = (await kernelLog()).length;
    const writer = new BackgroundWriter(dev, 16, 8, 'failover').start();
    try {
      await writer.waitForWrites(4, 'before the failure');
      let t0 = performance.now();
      const down = (await simApi.node(optimized.uuid, false)).body;
      checkEqual(down.up, false, 'node down');
      const during = await simAnaByPort(stack, volUuid);
      const downPort = optimized.nvmeEndpoint.split(':').pop()!;
      const promoted = Object.entries(during).find(([, s]) => s === 'optimized')?.[0];
      check(
        promoted && promoted !== downPort,
        `the simulator promoted another replica (states ${JSON.stringify(during)})`,
      );
      const seen = await waitFor(
        'the optimized path to move and the lost path to drop',
        () => {
          const v = pathViews(head);
          const lost = v.find((p) => p.trsvcid === downPort);
          const now = v.find((p) => p.trsvcid === promoted);
          return now?.anaState === 'optimized' && lost && lost.controllerState !== 'live' ? v : undefined;
        },
        20_000,
        () => pathViews(head),
      );
      observe('node down: paths', { ms: Math.round(performance.now() - t0), paths: seen, simulator: during });
      await writer.waitForWrites(6, 'while the node is down');
      check(
        writer.failures.length === 0,
        `no write failed while the node was down: ${JSON.stringify(writer.failures)}`,
      );

      t0 = performance.now();
      await simApi.node(optimized.uuid, true);
      const after = await simAnaByPort(stack, volUuid);
      checkEqual(after[downPort], 'non-optimized', 'the node is back as a non-optimized replica (no failback)');
      const back = await waitFor(
        'every path live with the simulator ANA states',
        () => {
          const v = pathViews(head);
          return v.length === 3 &&
            v.every((p) => p.controllerState === 'live') &&
            sorted(anaByPort(v)) === sorted(after)
            ? v
            : undefined;
        },
        30_000,
        () => pathViews(head),
      );
      observe('node up: paths', { ms: Math.round(performance.now() - t0), paths: back });
      await writer.waitForWrites(4, 'after the node came back');
    } finally {
      await writer.stop();
    }
    observe('background writer', {
      chunkWrites: writer.written,
      maxWriteMs: writer.maxWriteMs,
      failures: writer.failures,
      generations: writer.generations(),
    });
    checkEqual(writer.failures, [], 'write failures');
    const { problems, readMs } = await writer.verify();
    checkEqual(problems, [], 'every block the writer wrote reads back');
    observe('failover verify read ms', readMs);
    checkEqual(await ioErrorsSince(logMark), [], 'kernel I/O errors');
  });

  // ---- 5. online extend through the LightOS API
  await step('extend to 2 GiB with PUT + If-Match: the host sees it, data intact', async () => {
    const v = await simApi.volume(volUuid);
    check(v, 'the volume exists in the simulator');
    const stale = await simApi.putVolume(volUuid, { UUID: volUuid, size: String(2 * GiB) }, `${v.etag}0`);
    checkEqual(stale.status, 412, 'PUT with a stale If-Match');
    const t0 = performance.now();
    const put = await simApi.putVolume(volUuid, { UUID: volUuid, size: String(2 * GiB) }, v.etag);
    checkEqual(put.status, 200, `PUT size (${JSON.stringify(put.body)})`);
    await waitFor(
      'the head to show 2 GiB',
      () => (readSys(`/sys/block/${head}/size`) === String((2 * GiB) / 512) ? true : undefined),
      15_000,
      () => readSys(`/sys/block/${head}/size`),
    );
    observe('extend seen on the host after ms', Math.round(performance.now() - t0));
    const old = await verifyChunks(dev, 0, 'attach', new Array(8).fill(1));
    checkEqual(old.problems, [], 'data written before the extend');
    const w = await writeChunk(dev, 1024, 'grown', 1, 1);
    checkEqual(w.code, 0, `O_DIRECT write beyond the old end (${w.stderr})`);
    const grown = await verifyChunks(dev, 1024, 'grown', [0, 1]);
    checkEqual(grown.problems, [], 'data beyond the old end');
  });

  // ---- 6. detach
  await step('terminate_connection revokes the host on the target', async () => {
    const r = await serviceApi.terminateConnection(volumeId, connector);
    observe('terminate_connection', r);
    checkEqual(r.revoked, true, 'revoked');
    await waitFor('the host to leave allowed_hosts', () =>
      list(`${NVMET}/subsystems/${nqn}/allowed_hosts`).includes(me.hostNqn) ? undefined : true,
    );
    const att = await serviceApi.http.expect([200], 'GET', `/v1/attachments/${attachmentId}`);
    observe('attachment after terminate', att);
    // Revocation refuses new connects only; the live controllers are the host's to drop.
    observe(
      'controller states after the revoke',
      controllers(nqn).map((c) => c.state),
    );
  });
  await step('nvme disconnect: no controller, no device left', async () => {
    observe('nvme disconnect -n', (await sh('nvme', ['disconnect', '-n', nqn])).trim());
    await waitFor(
      'controllers to go',
      () => (controllers(nqn).length === 0 ? true : undefined),
      15_000,
      () => controllers(nqn),
    );
    checkEqual(nvmeDisks(), [], 'NVMe block devices');
  });

  // ---- 7. delete through the LightOS API
  await step('DELETE the volume on the simulator: namespace, ANA groups and file go', async () => {
    await simApi.deleteVolume(volUuid);
    await waitFor('the volume to be gone (404)', async () =>
      (await simApi.volume(volUuid)) === null ? true : undefined,
    );
    const file = `${stack.simDataDir}/${volUuid}.img`;
    await waitFor('the target to drop the namespace', () => {
      const left = [
        existsSync(nsDir) && nsDir,
        ...nodes.map(
          (n) =>
            existsSync(`${NVMET}/ports/${n.index + 1}/ana_groups/${group}`) && `port ${n.index + 1} group ${group}`,
        ),
        existsSync(file) && file,
      ].filter(Boolean);
      return left.length === 0 ? true : undefined;
    });
    checkEqual(list(`${NVMET}/subsystems/${nqn}/namespaces`), [], 'namespaces left');
  });
}
