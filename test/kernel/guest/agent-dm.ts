/**
 * Guest scenario group `agent-dm` (booted with `nvme_core.multipath=N`): the agent with a DM
 * connector. systemd-udevd and multipathd run as a host would run them; `portalis sim` (nvmet
 * plane), `portalis serve` and `portalis agent` as in agent-native. One part:
 *
 * - agent-dm: connector-properties says DM (native multipath off, multipathd usable);
 *   initialize_connection answers `dm_replicas`; the agent connects the three replicas and
 *   multipathd assembles `/dev/mapper/uuid.<uuid>` (checked in `multipathd show maps json` and
 *   sysfs holders); O_DIRECT pattern verified through the map; the optimized node down and up
 *   through the fault API while writes run: multipathd fails the path and reinstates it, the
 *   agent reports degraded and optimal again, no write fails, every block verifies, no I/O
 *   error on the map; terminate_connection: the agent removes the map before any path goes
 *   (sampled every 20 ms), then its controllers; nothing left.
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import path from 'node:path';
import { type AgentStack, agentLogLines, Sampler, startAgentStack } from './agent.ts';
import { BackgroundWriter, verifyChunks, writeChunks } from './io.ts';
import { check, checkEqual, list, observe, readSys, scenarioGroup, step, waitFor, type Part } from './lib.ts';
import { mapPaths, showMaps, startMultipathd, stopMultipathd } from './multipathd.ts';
import { controllerOf, controllers, ioErrorsSince, kernelLog, nvmeDisks } from './nvme.ts';
import { GiB } from '../../../src/shared/units.ts';

/** The plain namespace device (multipath=N) of the volume behind the controller to `port`. */
function pathDevOfPort(nqn: string, port: number, wwid: string): string | undefined {
  const ctrl = controllers(nqn).find((c) => c.address.trsvcid === String(port))?.name;
  return nvmeDisks().find((d) => readSys(`/sys/block/${d}/wwid`) === wwid && controllerOf(d) === ctrl);
}

interface DmStack {
  s: AgentStack;
  multipathd: ChildProcess;
}

async function agentDm({ s }: DmStack): Promise<void> {
  const c = s.connector;
  check(
    c.nvme_native_multipath === false && c.dm_multipath === true && c.multipath === true,
    `a DM connector: ${JSON.stringify(c)}`,
  );

  const volumeId = randomUUID();
  await s.createVolume(volumeId, 1);
  const { data, attachmentId } = await step('initialize_connection with the DM connector: dm_replicas', async () => {
    const r = await s.attach(volumeId);
    observe('connection_info.data', r.data);
    checkEqual(r.data.multipath_mode, 'dm', 'multipath_mode');
    check(
      r.data.target_nqn === undefined && r.data.portals === undefined,
      'no top-level target_nqn/portals with dm_replicas',
    );
    checkEqual(r.data.dm_replicas?.length, 3, 'dm_replicas of a 3-replica volume');
    for (const x of r.data.dm_replicas!) {
      checkEqual([x.vol_uuid, x.target_nqn, x.portals.length], [r.data.vol_uuid, s.nqn, 1], 'replica entry');
    }
    return r;
  });
  const wwid = `uuid.${data.vol_uuid}`;
  const mapper = `/dev/mapper/${wwid}`;
  const ports = data.dm_replicas!.map((x) => x.portals[0]![1]);

  const view = await step(
    'the agent connects the replicas, multipathd assembles the map, connected/optimal reported',
    async () => {
      const t0 = performance.now();
      const a = await s.waitConnected(attachmentId, 3, 60_000);
      observe('connected reported after ms', Math.round(performance.now() - t0));
      observe('report', a.agent);
      checkEqual(a.agent!.device_path, mapper, 'device_path');
      return a;
    },
  );

  const dm = await step('multipathd and sysfs: the map over three active paths, one per replica', async () => {
    const json = await waitFor('the map with three active, ready paths in multipathd', async () => {
      const j = await showMaps();
      const p = mapPaths(j, wwid);
      return p && p.length === 3 && p.every((x) => x.dm_st === 'active' && x.chk_st === 'ready') ? j : undefined;
    });
    observe('multipathd show maps json', json);
    const dmDev = path.basename(readlinkSync(mapper));
    checkEqual(readSys(`/sys/block/${dmDev}/dm/uuid`), `mpath-${wwid}`, 'dm uuid');
    const devs = ports.map((p) => pathDevOfPort(s.nqn, p, wwid));
    check(devs.every(Boolean), `a path device per replica port: ${JSON.stringify(devs)}`);
    checkEqual(
      mapPaths(json, wwid)!
        .map((p) => p.dev)
        .sort(),
      [...(devs as string[])].sort(),
      "the map's paths are the replicas' namespaces",
    );
    for (const d of devs) checkEqual(list(`/sys/block/${d}/holders`), [dmDev], `${d} holders`);
    checkEqual(Number(readSys(`/sys/block/${dmDev}/size`)) * 512, GiB, 'map size');
    checkEqual(view.agent!.size_bytes, GiB, 'reported size');
    checkEqual(controllers(s.nqn).length, 3, 'controllers');
    return dmDev;
  });

  await step('O_DIRECT write and read back 8 MiB through the map', async () => {
    const writeMs = await writeChunks(mapper, 0, 8, 'dm');
    const { problems, readMs } = await verifyChunks(mapper, 0, 'dm', new Array(8).fill(1));
    checkEqual(problems, [], 'data read back');
    observe('O_DIRECT 8 MiB', { writeMs, readMs });
  });

  // ---- one path failed and restored, under writes
  const state = await s.sim.state();
  const vol = state.volumes.find((v: { uuid: string }) => v.uuid === data.vol_uuid);
  const optimized = (state.nodes as { uuid: string; nvmeEndpoint: string }[]).find(
    (n) => vol.ana[n.uuid] === 'optimized',
  )!;
  const downPort = Number(optimized.nvmeEndpoint.split(':').pop());
  const downDev = pathDevOfPort(s.nqn, downPort, wwid)!;
  observe('failed path', { port: downPort, dev: downDev });
  const logMark = (await kernelLog()).length;
  const writer = new BackgroundWriter(mapper, 16, 8, 'dm-failover').start();
  const mp = new Sampler(async () => {
    const p = mapPaths(await showMaps(), wwid)?.find((x) => x.dev === downDev);
    return p ? `${p.dm_st}/${p.chk_st}` : 'absent';
  }, 100);
  try {
    await writer.waitForWrites(4, 'before the failure');
    await step('optimized node down: multipathd fails the path, the agent reports degraded, writes go on', async () => {
      const t0 = performance.now();
      await s.sim.node(optimized.uuid, false);
      await waitFor(
        'multipathd to fail the path',
        () => (mp.samples.at(-1)?.value.startsWith('failed') ? true : undefined),
        30_000,
        () => mp.samples.at(-1),
      );
      const a = await s.waitAttachment(attachmentId, 'health degraded', (x) => {
        const lost = x.agent?.paths.find((p) => p.port === downPort);
        return x.health === 'degraded' && lost && lost.state !== 'live' ? x : undefined;
      });
      observe('degraded reported after ms', Math.round(performance.now() - t0));
      observe('report while down', a.agent);
      await writer.waitForWrites(6, 'while the node is down');
      checkEqual(writer.failures, [], 'write failures while the node is down');
    });
    await step('node up: multipathd reinstates the path, the agent reports optimal', async () => {
      const t0 = performance.now();
      await s.sim.node(optimized.uuid, true);
      await waitFor(
        'every path active and ready in multipathd',
        async () => {
          const p = mapPaths(await showMaps(), wwid);
          return p && p.length === 3 && p.every((x) => x.dm_st === 'active' && x.chk_st === 'ready') ? true : undefined;
        },
        30_000,
        () => mp.samples.at(-1),
      );
      observe('reinstated after ms', Math.round(performance.now() - t0));
      await s.waitConnected(attachmentId, 3);
      observe('optimal reported after ms', Math.round(performance.now() - t0));
      await writer.waitForWrites(4, 'after the path came back');
    });
  } finally {
    await writer.stop();
    await mp.stop();
  }
  observe('failed path in multipathd over time', mp.transitions());
  observe('writer', { chunkWrites: writer.written, maxWriteMs: writer.maxWriteMs, failures: writer.failures });
  checkEqual(writer.failures, [], 'write failures');
  checkEqual((await writer.verify()).problems, [], 'every block written reads back');
  const errors = await ioErrorsSince(logMark);
  // The failed path's own requests fail fast (that is how dm-multipath learns of it); the map's must not.
  observe('kernel I/O errors on path devices (expected: the failed path)', errors.slice(0, 10));
  checkEqual(
    errors.filter((l) => l.includes(dm) || !/nvme\d+n\d+/.test(l)),
    [],
    'kernel I/O errors on the map',
  );

  // ---- teardown: map first, then the paths
  await step('terminate_connection: the agent removes the map before any path goes; nothing left', async () => {
    const mark = (await kernelLog()).length;
    const order = new Sampler(
      () => ({
        map: readSys(`/sys/block/${dm}/dm/name`) === wwid,
        controllers: controllers(s.nqn).length,
        paths: nvmeDisks().length,
      }),
      20,
    );
    let a: Awaited<ReturnType<typeof s.detach>>;
    try {
      a = await s.detach(volumeId, attachmentId);
    } finally {
      await order.stop();
    }
    observe('teardown over time', order.transitions());
    observe('attachment after detach', { status: a.status, agent: a.agent });
    const firstFewer = order.samples.find((x) => x.value.controllers < 3 || x.value.paths < 3);
    check(firstFewer, 'the sampler saw the paths go');
    checkEqual(firstFewer.value.map, false, `the map was gone when the first path went (at ${firstFewer.at} ms)`);
    const detached = agentLogLines(s.agent, 'detached', attachmentId).at(-1);
    observe('agent: detached', detached);
    checkEqual(detached?.removedMaps, [wwid], 'maps the agent removed');
    checkEqual(((detached?.disconnected as string[]) ?? []).length, 3, 'controllers the agent disconnected');
    checkEqual(mapPaths(await showMaps(), wwid), null, 'the map in multipathd');
    checkEqual(controllers(s.nqn), [], 'controllers');
    checkEqual(
      list('/sys/block').filter((d) => d.startsWith('dm-') || d.startsWith('nvme')),
      [],
      'block devices left',
    );
    checkEqual(await ioErrorsSince(mark), [], 'kernel I/O errors during the teardown');
    checkEqual(s.allowedHosts(), [], 'allowed_hosts');
  });
  await s.deleteVolume(volumeId);
}

/**
 * How long the DM live-paths steps may take. Each agent pass in DM mode reads every plain
 * namespace device and asks multipathd, and in the emulated guest under O_DIRECT writers that
 * took up to 2 s per scan (run of 2026-12-01); a readdress takes two passes (the dead controller
 * first, then the new portal and the map), and the passes of the two volumes share the
 * subsystem's lock. A deadline against a hang, not a speed goal.
 */
const LIVE_PATHS_WAIT_MS = 150_000;

/**
 * The live-paths scenario in DM mode: two DM-attached volumes under O_DIRECT writes; a node
 * joins, A's replica moves from node 2 to node 3, node 1 is readdressed. A's map gains the new
 * path before the old one leaves it (never fewer than two active paths during the move); B's
 * path through node 2 stays active throughout; both maps end on exactly the served portals.
 */
async function agentDmLivePaths({ s }: DmStack): Promise<void> {
  const attachDm = async (label: string) => {
    const volumeId = randomUUID();
    await s.createVolume(volumeId, 1);
    const { data, attachmentId } = await s.attach(volumeId);
    checkEqual(data.multipath_mode, 'dm', `${label}: multipath_mode`);
    await s.waitConnected(attachmentId, 3, 60_000);
    return { volumeId, data, attachmentId, wwid: `uuid.${data.vol_uuid}`, mapper: `/dev/mapper/uuid.${data.vol_uuid}` };
  };
  const a = await step('create, attach A (DM)', () => attachDm('A'));
  const b = await step('create, attach B (DM)', () => attachDm('B'));
  const base = Math.min(...a.data.dm_replicas!.map((x) => x.portals[0]![1]));
  const [p0, p1, p2, p3, pNew] = [base, base + 1, base + 2, base + 3, base + 10];
  const logMark = (await kernelLog()).length;
  const wa = new BackgroundWriter(a.mapper, 0, 8, 'dm-live-a').start();
  const wb = new BackgroundWriter(b.mapper, 0, 8, 'dm-live-b').start();
  const bDev2 = pathDevOfPort(s.nqn, p2, b.wwid);
  check(bDev2, "B's path device through node 2");
  let phase = 'before';
  const sampler = new Sampler(async () => {
    const j = await showMaps();
    const active = (w: string) => (mapPaths(j, w) ?? []).filter((x) => x.dm_st === 'active').length;
    const b2 = mapPaths(j, b.wwid)?.find((x) => x.dev === bDev2)?.dm_st ?? null;
    return { phase, aActive: active(a.wwid), b2 };
  }, 50);
  let added: number | null = null;
  s.undoClusterChanges(1, p1, () => added);
  try {
    await wa.waitForWrites(4, 'A before the changes');
    const r = await s.sim.addNode();
    checkEqual(r.status, 201, 'POST /sim/v1/nodes');
    added = r.body.index as number;
    await step("A's replica moves from node 2 to node 3: A's map gains node 3 before node 2 leaves", async () => {
      phase = 'move';
      checkEqual((await s.sim.moveReplica(a.data.vol_uuid, 2, 3)).status, 200, 'replica move');
      await s.waitLivePorts(a.attachmentId, 'A', [p0, p1, p3], LIVE_PATHS_WAIT_MS);
      await waitFor(
        "A's map over exactly the three served ports",
        async () => {
          const devs = [p0, p1, p3].map((p) => pathDevOfPort(s.nqn, p, a.wwid));
          const inMap = (mapPaths(await showMaps(), a.wwid) ?? []).map((x) => x.dev).sort();
          return devs.every(Boolean) && inMap.join() === [...(devs as string[])].sort().join() ? inMap : undefined;
        },
        LIVE_PATHS_WAIT_MS,
      );
      phase = 'moved';
    });
    await step('node 1 is readdressed: both maps follow', async () => {
      phase = 'readdress';
      checkEqual((await s.sim.setNodeAddress(1, '127.0.0.1', pNew)).status, 200, 'address change');
      await s.waitLivePorts(a.attachmentId, 'A', [p0, p3, pNew], LIVE_PATHS_WAIT_MS);
      await s.waitLivePorts(b.attachmentId, 'B', [p0, p2, pNew], LIVE_PATHS_WAIT_MS);
      phase = 'done';
      await wa.waitForWrites(4, 'A after the readdress');
      await wb.waitForWrites(4, 'B after the readdress');
    });
  } finally {
    await wa.stop();
    await wb.stop();
    await sampler.stop();
  }
  const samples = sampler.samples.map((x) => x.value);
  observe('samples (phase, A active paths, B node-2 path)', sampler.transitions());
  const duringMove = samples.filter((x) => x.phase === 'move').map((x) => x.aActive);
  check(
    duringMove.every((n) => n >= 2),
    `A's map kept at least two active paths during the move: ${duringMove}`,
  );
  checkEqual([...new Set(samples.map((x) => x.b2))], ['active'], "B's node-2 path in its map");
  for (const w of [wa, wb]) {
    observe(`writer ${w.tag}`, { chunkWrites: w.written, maxWriteMs: w.maxWriteMs, failures: w.failures });
    checkEqual(w.failures, [], `${w.tag}: write failures`);
    const { problems } = await w.verify();
    checkEqual(problems, [], `${w.tag}: every block written reads back`);
  }
  // With nvme_core.multipath=N the kernel does not act on ANA: a new controller shows every
  // namespace of the subsystem, and udev's probe of one whose ANA group is inaccessible through
  // that port (B's namespace through node 3) fails with "Asymmetric Access Inaccessible" (status
  // type 3h, code 02h). Those path devices are in no map; the maps' own I/O must not fail.
  const maps = [a, b].map((x) => path.basename(readlinkSync(x.mapper)));
  const errors = await ioErrorsSince(logMark);
  observe('kernel I/O errors on path devices (probes of ANA-inaccessible namespaces)', errors.slice(0, 10));
  checkEqual(
    errors.filter((l) => maps.some((dm) => l.includes(dm)) || !/nvme\d+n\d+/.test(l)),
    [],
    'kernel I/O errors on the maps',
  );
  for (const x of [a, b]) {
    await s.detach(x.volumeId, x.attachmentId);
    await s.deleteVolume(x.volumeId);
  }
}

const parts: Part<DmStack>[] = [
  { name: 'agent-dm', run: agentDm },
  { name: 'agent-dm-live-paths', run: agentDmLivePaths },
];

await scenarioGroup('agent-dm', {
  setup: async () => {
    checkEqual(readSys('/sys/module/nvme_core/parameters/multipath'), 'N', 'nvme_core.multipath');
    // A 1 s path checker (default 5 s, up to 20 s while healthy) so that a returning path is
    // seen quickly.
    const multipathd = await step('systemd-udevd and multipathd', () =>
      startMultipathd(
        'defaults {\n  user_friendly_names no\n  find_multipaths no\n  polling_interval 1\n  max_polling_interval 2\n}\n',
      ),
    );
    const s = await startAgentStack({ PORTALIS_AGENT_DEVICE_TIMEOUT: '30' });
    return { s, multipathd };
  },
  parts,
  between: ({ s }) => s.cleanUp(),
  diagnose: (x) => x?.s.diagnose(),
  teardown: async ({ s, multipathd }) => {
    await step('stop the agent, portalis serve and portalis sim (SIGTERM)', () => s.stop());
    await step('stop multipathd and udevd', () => stopMultipathd(multipathd));
  },
});
