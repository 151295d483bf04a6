/**
 * Guest scenario group `agent-native` (native NVMe multipath): one boot, one stack —
 * `portalis sim` (nvmet plane), `portalis serve` (PostgreSQL on the host) and the real agent
 * daemon `portalis agent` — and six scenarios, each reported on its own. None configures the
 * target or connects anything by hand: volumes are created and attached through the service,
 * the agent does every connect and disconnect, and every check reads real state (the service's
 * attachment report, sysfs, configfs, O_DIRECT I/O, the agent's processes).
 *
 * - agent-attach: a 3-replica volume attached with the agent's own connector: the agent
 *   connects all three portals, one head appears, the agent reports connected/optimal with
 *   three paths that match sysfs; O_DIRECT pattern written and read back; terminate_connection
 *   stays pending until the agent disconnected; no controller left, the host revoked.
 * - agent-shared-subsystem: two volumes on the same host and subsystem; one detached while
 *   writes run on the other: no write fails, the other's controllers never leave `live`.
 * - agent-failover: the optimized node down and up through the fault API under writes: no I/O
 *   error, every block verifies, the reported health goes degraded and back to optimal.
 * - agent-extend: online extend through the service: the agent reports the new size, the
 *   device shows it, old data intact, new space usable.
 * - agent-killed: the agent SIGKILLed (with its children) while its third connect is held;
 *   a restarted agent converges: exactly one controller per portal, the two it found adopted.
 * - agent-busy: detach while the device is held open: refused (`in_use`), access and device
 *   stay; `force` tears it down.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { type AgentStack, agentLogLines, livePorts, Sampler, simNodeOf, startAgentStack } from './agent.ts';
import { BackgroundWriter, verifyChunks, writeChunk, writeChunks } from './io.ts';
import { check, checkEqual, observe, readSys, scenarioGroup, sh, step, waitFor, type Part } from './lib.ts';
import {
  checkOneControllerPerPortal,
  controllers,
  controllersByPort,
  headByUuid,
  waitAllDisconnected,
  ioErrorsSince,
  kernelLog,
  pathViews,
} from './nvme.ts';
import type { AttachmentView, NvmeofConnectionData } from './rest.ts';
import { GiB } from '../../../src/shared/units.ts';

type Portal = [string, number, string];

/** The simulator's ANA state of the volume per NVMe port. */
async function simAnaByPort(s: AgentStack, volUuid: string): Promise<Record<string, string>> {
  const state = await s.sim.state();
  const vol = state.volumes.find((v: { uuid: string }) => v.uuid === volUuid);
  check(vol, `the simulator knows volume ${volUuid}`);
  const out: Record<string, string> = {};
  for (const n of state.nodes as { uuid: string; nvmeEndpoint: string }[])
    out[n.nvmeEndpoint.split(':').pop()!] = vol.ana[n.uuid];
  return out;
}

/**
 * The agent's report agrees with sysfs: its device is the one head of the volume, and each
 * reported path is a controller of that portal with the per-path ANA state sysfs shows.
 */
function checkReportMatchesSysfs(a: AttachmentView, data: NvmeofConnectionData, portals: Portal[]): string {
  const head = headByUuid(data.vol_uuid);
  check(head, `exactly one head device carries ${data.vol_uuid}`);
  checkEqual(a.agent!.device_path, `/dev/${head}`, 'reported device_path is the head');
  checkEqual(readSys(`/sys/block/${head}/nsid`), data.ns_id, 'head nsid = ns_id');
  checkEqual(a.agent!.size_bytes, Number(readSys(`/sys/block/${head}/size`)) * 512, 'reported size_bytes = sysfs size');
  const views = pathViews(head);
  checkEqual(views.length, portals.length, `per-path devices of ${head}`);
  const byCtrl = new Map(views.map((v) => [v.controller, v]));
  const reported = [...a.agent!.paths].sort((x, y) => x.port - y.port);
  checkEqual(
    reported.map((p) => p.port),
    portals.map((p) => p[1]).sort(),
    'one reported path per portal',
  );
  for (const p of reported) {
    const v = byCtrl.get(p.controller ?? '');
    check(v, `reported controller ${p.controller} (port ${p.port}) is a path of ${head}: ${JSON.stringify(views)}`);
    checkEqual(v.trsvcid, String(p.port), `${p.controller} serves port ${p.port}`);
    checkEqual(p.state, v.controllerState, `${p.controller} state`);
    checkEqual(p.ana_state, v.anaState, `${p.controller} ANA state`);
  }
  return head;
}

/** Creates a 1 GiB (or `sizeGb`) 3-replica volume, attaches it, waits for the agent's connected report. */
async function attachNew(s: AgentStack, label: string, sizeGb = 1) {
  const volumeId = randomUUID();
  await s.createVolume(volumeId, sizeGb);
  const { data, attachmentId } = await s.attach(volumeId);
  checkEqual(data.multipath_mode, 'native', `${label}: multipath_mode`);
  checkEqual(data.target_nqn, s.nqn, `${label}: target_nqn is the cluster subsystem`);
  const portals = (data.portals ?? []) as Portal[];
  checkEqual(portals.length, 3, `${label}: portals of a 3-replica volume`);
  const t0 = performance.now();
  const view = await s.waitConnected(attachmentId, 3);
  return { volumeId, data, attachmentId, portals, view, connectMs: Math.round(performance.now() - t0) };
}

/** Detaches normally (pending until the agent reported the device gone), then deletes the volume. */
async function detachAndDelete(s: AgentStack, volumeId: string, attachmentId: string): Promise<AttachmentView> {
  const a = await s.detach(volumeId, attachmentId);
  await s.deleteVolume(volumeId);
  return a;
}

// ------------------------------------------------------------------------------ 1. attach

async function agentAttach(s: AgentStack): Promise<void> {
  const { volumeId, data, attachmentId, portals, view, connectMs } = await step(
    'create, initialize_connection, agent connects',
    () => attachNew(s, 'volume'),
  );
  observe('connection_info.data', data);
  observe('report when connected', { afterMs: connectMs, agent: view.agent });
  checkEqual(s.allowedHosts(), [s.connector.nqn], 'configfs allowed_hosts');

  const head = await step(
    'the report matches sysfs: one head, three paths, one live controller per portal',
    async () => {
      const h = checkReportMatchesSysfs(view, data, portals);
      checkOneControllerPerPortal(s.nqn, portals);
      checkEqual(view.agent!.size_bytes, GiB, 'size_bytes');
      const sim = await simAnaByPort(s, data.vol_uuid);
      for (const p of view.agent!.paths)
        checkEqual(p.ana_state, sim[String(p.port)], `ANA state of port ${p.port} as the simulator set it`);
      checkEqual(
        view.agent!.paths.find((p) => p.port === portals[0]![1])?.ana_state,
        'optimized',
        'the first portal is optimized',
      );
      observe('paths (sysfs)', pathViews(h));
      return h;
    },
  );

  await step('O_DIRECT write and read back 8 MiB through the reported device', async () => {
    const dev = view.agent!.device_path!;
    const writeMs = await writeChunks(dev, 0, 8, 'attach');
    const { problems, readMs } = await verifyChunks(dev, 0, 'attach', new Array(8).fill(1));
    checkEqual(problems, [], 'data read back');
    observe('O_DIRECT 8 MiB', { writeMs, readMs });
  });

  await step(
    'terminate_connection: pending until the agent disconnected; no controller left; host revoked',
    async () => {
      const t0 = performance.now();
      const a = await s.detach(volumeId, attachmentId);
      observe('detached after ms', Math.round(performance.now() - t0));
      observe('attachment after detach', { status: a.status, agent: a.agent });
      await waitAllDisconnected(s.nqn, head);
      checkEqual(s.allowedHosts(), [], 'configfs allowed_hosts after the revoke');
    },
  );
  await s.deleteVolume(volumeId);
}

// ------------------------------------------------------------------------------ 2. shared subsystem

async function agentSharedSubsystem(s: AgentStack): Promise<void> {
  const [A, B] = await step('two volumes attached through the agent', async () => {
    const a = await attachNew(s, 'A');
    const b = await attachNew(s, 'B');
    return [a, b];
  });
  checkEqual(A.data.target_nqn, B.data.target_nqn, 'both volumes are namespaces of one subsystem');
  const devA = A.view.agent!.device_path!;
  const devB = B.view.agent!.device_path!;
  check(devA !== devB, `two heads (${devA}, ${devB})`);
  const ctrls = await step('one set of three controllers carries both', () => {
    const byPort = checkOneControllerPerPortal(s.nqn, A.portals);
    checkEqual(
      pathViews(path.basename(devB))
        .map((v) => v.controller)
        .sort(),
      pathViews(path.basename(devA))
        .map((v) => v.controller)
        .sort(),
      'both heads use the same controllers',
    );
    return Object.values(byPort).flat().sort();
  });
  observe('controllers', ctrls);

  const logMark = (await kernelLog()).length;
  const writer = new BackgroundWriter(devB, 0, 8, 'shared').start();
  // Every 25 ms: B's controllers and head as sysfs shows them; any sample with one of them
  // missing or not live is a failure.
  const watch = new Sampler(() => ({
    states: Object.fromEntries(controllers(s.nqn).map((c) => [c.name, c.state])),
    headB: existsSync(`/sys/block/${path.basename(devB)}`),
  }));
  try {
    await writer.waitForWrites(4, 'B before the detach of A');
    await step('terminate A (normal) while B is written: A detached, its device reported gone', async () => {
      const a = await s.detach(A.volumeId, A.attachmentId);
      observe('A after detach', { status: a.status, agent: a.agent });
      // The controllers stay for B: the agent must not have disconnected anything.
      const kept = agentLogLines(s.agent, 'detached', A.attachmentId).at(-1);
      observe('agent: A detached', kept);
      checkEqual((kept?.disconnected as string[] | undefined) ?? [], [], 'controllers the agent disconnected for A');
      check(
        B.data.vol_uuid !== A.data.vol_uuid && s.allowedHosts().includes(s.connector.nqn),
        'the host stays allowed (B)',
      );
    });
    await writer.waitForWrites(4, 'B after the detach of A');
    await step('delete A: its namespace and head go, B is untouched', async () => {
      await s.deleteVolume(A.volumeId);
      await waitFor("A's head to go", () => (headByUuid(A.data.vol_uuid) ? undefined : true), 15_000);
    });
    await writer.waitForWrites(4, 'B after A was deleted');
  } finally {
    await writer.stop();
    await watch.stop();
  }
  observe('B writer', { chunkWrites: writer.written, maxWriteMs: writer.maxWriteMs, failures: writer.failures });
  observe('B controllers over time', watch.transitions());
  checkEqual(writer.failures, [], 'B write failures');
  const bad = watch.samples.filter((x) => !x.value.headB || ctrls.some((c) => x.value.states[c] !== 'live'));
  checkEqual(
    bad.slice(0, 3),
    [],
    `samples (of ${watch.samples.length}) in which B's head or one of its controllers was missing or not live`,
  );
  const { problems } = await writer.verify();
  checkEqual(problems, [], 'every block of B reads back');
  checkEqual(await ioErrorsSince(logMark), [], 'kernel I/O errors');
  const b = await s.api.attachment(B.attachmentId);
  check(
    b.agent?.state === 'connected' && b.health === 'optimal',
    `B still connected and optimal: ${JSON.stringify(b.agent)}`,
  );
  checkEqual(
    controllers(s.nqn)
      .map((c) => c.name)
      .sort(),
    ctrls,
    "B's controllers are the same ones",
  );

  await step('detach B: now the controllers go', async () => {
    await detachAndDelete(s, B.volumeId, B.attachmentId);
    await waitFor(
      'no controller of the subsystem',
      () => (controllers(s.nqn).length === 0 ? true : undefined),
      10_000,
      () => controllers(s.nqn),
    );
  });
}

// ------------------------------------------------------------------------------ 3. failover

async function agentFailover(s: AgentStack): Promise<void> {
  const { volumeId, data, attachmentId, portals, view } = await step('create, attach', () => attachNew(s, 'volume'));
  const dev = view.agent!.device_path!;
  const optimized = await simNodeOf(s, portals[0]!);
  const downPort = portals[0]![1];
  const logMark = (await kernelLog()).length;
  const writer = new BackgroundWriter(dev, 0, 8, 'failover').start();
  // The service's view every 100 ms: health as reported, and the lost path's state.
  const health = new Sampler(async () => {
    const a = await s.api.attachment(attachmentId);
    const lost = a.agent?.paths.find((p) => p.port === downPort);
    return { health: a.health, lost: lost ? `${lost.state}/${lost.ana_state}` : null };
  }, 100);
  try {
    await writer.waitForWrites(4, 'before the failure');
    await step('optimized node down: the agent reports degraded, writes go on', async () => {
      const t0 = performance.now();
      await s.sim.node(optimized.uuid, false);
      const a = await s.waitAttachment(attachmentId, 'health degraded with the lost path not live', (x) => {
        const lost = x.agent?.paths.find((p) => p.port === downPort);
        return x.health === 'degraded' && x.agent?.health === 'degraded' && lost && lost.state !== 'live'
          ? x
          : undefined;
      });
      observe('degraded reported after ms', Math.round(performance.now() - t0));
      observe('report while down', a.agent);
      const during = await simAnaByPort(s, data.vol_uuid);
      // Among the live paths: a path whose controller is reconnecting keeps the last ANA state
      // the host read (`optimized` when the node went before its ANA change reached the host).
      const promoted = a.agent!.paths.find((p) => p.ana_state === 'optimized' && p.state === 'live');
      check(
        promoted && during[String(promoted.port)] === 'optimized',
        `the agent reports the promoted replica optimized: ${JSON.stringify({ during, paths: a.agent!.paths })}`,
      );
      await writer.waitForWrites(6, 'while the node is down');
      checkEqual(writer.failures, [], 'write failures while the node is down');
    });
    await step('node up: all three paths live again, the agent reports optimal', async () => {
      const t0 = performance.now();
      await s.sim.node(optimized.uuid, true);
      const a = await s.waitConnected(attachmentId, 3);
      observe('optimal reported after ms', Math.round(performance.now() - t0));
      const after = await simAnaByPort(s, data.vol_uuid);
      checkEqual(after[String(downPort)], 'non-optimized', 'the node is back as a non-optimized replica');
      checkReportMatchesSysfs(a, data, portals);
      checkOneControllerPerPortal(s.nqn, portals);
      await writer.waitForWrites(4, 'after the node came back');
    });
  } finally {
    await writer.stop();
    await health.stop();
  }
  const seen = health.transitions();
  observe('health over time', seen);
  observe('writer', { chunkWrites: writer.written, maxWriteMs: writer.maxWriteMs, failures: writer.failures });
  checkEqual(writer.failures, [], 'write failures');
  const { problems, readMs } = await writer.verify();
  checkEqual(problems, [], 'every block written reads back');
  observe('verify read ms', readMs);
  checkEqual(await ioErrorsSince(logMark), [], 'kernel I/O errors');
  const healths = seen.map((x) => x.value.health).filter((h, i, all) => i === 0 || all[i - 1] !== h);
  checkEqual(healths, ['optimal', 'degraded', 'optimal'], 'reported health over time');
  await step('detach, delete', () => detachAndDelete(s, volumeId, attachmentId));
}

// ------------------------------------------------------------------------------ 5. extend

async function agentExtend(s: AgentStack): Promise<void> {
  const { volumeId, attachmentId, view } = await step('create 1 GiB, attach', () => attachNew(s, 'volume'));
  const dev = view.agent!.device_path!;
  const head = path.basename(dev);
  checkEqual(view.agent!.size_bytes, GiB, 'size before');
  await writeChunks(dev, 0, 8, 'extend');
  await step('POST /v1/volumes/{id}/extend to 2 GiB: the agent reports it, the device shows it', async () => {
    const t0 = performance.now();
    const v = await s.api.extendVolume(volumeId, 2);
    checkEqual(v.size_gb, 2, "the service's volume size");
    const a = await s.waitAttachment(attachmentId, 'size_bytes 2 GiB reported', (x) =>
      x.agent?.state === 'connected' && x.agent.size_bytes === 2 * GiB ? x : undefined,
    );
    observe('new size reported after ms', Math.round(performance.now() - t0));
    checkEqual(a.agent!.device_path, dev, 'same device');
    checkEqual(Number(readSys(`/sys/block/${head}/size`)) * 512, 2 * GiB, 'sysfs size');
    checkEqual((await sh('blockdev', ['--getsize64', dev])).trim(), String(2 * GiB), 'blockdev --getsize64');
    checkEqual(a.health, 'optimal', 'health');
    const rescans = agentLogLines(s.agent, 'volume grew; rescanning', attachmentId);
    observe('agent rescans', rescans.length);
  });
  await step('old data intact, new space usable', async () => {
    checkEqual(
      (await verifyChunks(dev, 0, 'extend', new Array(8).fill(1))).problems,
      [],
      'data written before the extend',
    );
    const w = await writeChunk(dev, 1024 + 512, 'grown', 1, 0);
    checkEqual(w.code, 0, `O_DIRECT write beyond the old end (${w.stderr})`);
    checkEqual((await verifyChunks(dev, 1024 + 512, 'grown', [1])).problems, [], 'data beyond the old end');
  });
  await step('detach, delete', () => detachAndDelete(s, volumeId, attachmentId));
}

// ------------------------------------------------------------------------------ 6. killed mid-attach

/**
 * An `nvme` in front of the real one, on the agent's PATH only: `nvme connect` to the gated port
 * waits while `<dir>/closed` exists (and leaves `<dir>/waiting.<pid>` meanwhile). Everything else
 * goes straight to nvme-cli. This holds the agent inside its connect, deterministically.
 */
function nvmeGate(dir: string, port: number, realNvme: string): void {
  mkdirSync(dir, { recursive: true });
  const script = `#!/bin/sh
if [ "$1" = connect ]; then
  prev=; port=
  for a in "$@"; do [ "$prev" = -s ] && port=$a; prev=$a; done
  if [ "$port" = "${port}" ]; then
    : > "${dir}/waiting.$$"
    while [ -e "${dir}/closed" ]; do sleep 0.05; done
  fi
fi
exec ${realNvme} "$@"
`;
  writeFileSync(path.join(dir, 'nvme'), script);
  chmodSync(path.join(dir, 'nvme'), 0o755);
  writeFileSync(path.join(dir, 'closed'), '');
}

/** The pids that are still running (not gone, not zombies). */
function pidsAlive(pids: string[]): string[] {
  return pids.filter((p) => {
    const stat = readSys(`/proc/${p}/stat`);
    return stat !== null && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  });
}

async function agentKilled(s: AgentStack): Promise<void> {
  const realNvme = (await sh('sh', ['-c', 'command -v nvme'])).trim();
  const gate = '/tmp/portalis-nvme-gate';
  const volumeId = randomUUID();
  await s.createVolume(volumeId, 1);

  await step('stop the agent (SIGTERM); start one whose nvme connect to one portal is held', async () => {
    const stopped = await s.agent.stop();
    checkEqual(
      { code: stopped.code, killed: stopped.killed },
      { code: 0, killed: false },
      'the agent exits 0 on SIGTERM',
    );
    // The portal that will be held: the volume's last (a non-optimized replica).
    const state = await s.sim.state();
    const vol = state.volumes.find((v: { name: string; uuid: string }) => v.name === `volume-${volumeId}`);
    check(vol, 'the simulator has the volume');
    const last = (state.nodes as { uuid: string; nvmeEndpoint: string }[])
      .filter((n) => vol.ana[n.uuid] === 'non-optimized')
      .at(-1);
    check(last, 'a non-optimized replica');
    const port = Number(last.nvmeEndpoint.split(':').pop());
    nvmeGate(gate, port, realNvme);
    s.cleanups.push(() => rmSync(gate, { recursive: true, force: true }));
    observe('held port', port);
    await s.startAgent({ env: { PATH: `${gate}:${process.env.PATH}` }, detached: true });
  });

  const { data, attachmentId } = await s.attach(volumeId);
  const portals = (data.portals ?? []) as Portal[];
  const atKill = await step(
    'attach: wait until two portals are connected and the third connect is held, then SIGKILL',
    async () => {
      const seen = await s.waitAttachment(
        attachmentId,
        'reported connecting, two controllers, the third connect held',
        (a) => {
          const waiting = readdirSync(gate).filter((f) => f.startsWith('waiting.'));
          const byPort = controllersByPort(s.nqn);
          return a.agent?.state === 'connecting' && waiting.length === 1 && Object.keys(byPort).length === 2
            ? { a, waiting, byPort }
            : undefined;
        },
        45_000,
      );
      const agent = s.agent;
      agent.kill('SIGKILL', true);
      const exit = await agent.exited;
      const heldPids = seen.waiting.map((w) => w.slice('waiting.'.length));
      await waitFor(
        'the held nvme to be gone with the agent',
        () => (pidsAlive(heldPids).length === 0 ? true : undefined),
        5_000,
        () => pidsAlive(heldPids),
      );
      rmSync(path.join(gate, 'closed'), { force: true });
      const state = {
        exit,
        report: seen.a.agent,
        controllers: controllersByPort(s.nqn),
        head: headByUuid(data.vol_uuid) ?? null,
      };
      observe('when killed', state);
      checkEqual(exit.signal, 'SIGKILL', 'the agent died of SIGKILL');
      check(seen.a.agent?.state !== 'connected', 'killed before the attach completed');
      return state;
    },
  );
  const missingPort = portals.map((p) => String(p[1])).find((p) => !atKill.controllers[p]);
  check(missingPort, 'one portal had no controller when the agent was killed');

  await step(
    'restart the agent: it converges to exactly one controller per portal, adopting the two it found',
    async () => {
      const t0 = performance.now();
      const registeredMs = await s.startAgent();
      const a = await s.waitConnected(attachmentId, 3);
      observe('restarted agent', { registeredMs, connectedAfterMs: Math.round(performance.now() - t0) });
      const byPort = checkOneControllerPerPortal(s.nqn, portals);
      for (const [port, names] of Object.entries(atKill.controllers))
        checkEqual(byPort[port], names, `the controller to port ${port} was adopted, not replaced`);
      observe('controllers after restart', byPort);
      checkReportMatchesSysfs(a, data, portals);
      checkEqual(a.agent!.state, 'connected', 'state');
      const dev = a.agent!.device_path!;
      await writeChunks(dev, 0, 4, 'killed');
      checkEqual((await verifyChunks(dev, 0, 'killed', [1, 1, 1, 1])).problems, [], 'I/O after the restart');
    },
  );
  await step('detach, delete', () => detachAndDelete(s, volumeId, attachmentId));
}

// ------------------------------------------------------------------------------ 7. busy device

async function agentBusy(s: AgentStack): Promise<void> {
  const { volumeId, data, attachmentId, view } = await step('create, attach', () => attachNew(s, 'volume'));
  const dev = view.agent!.device_path!;
  const head = path.basename(dev);
  // A process holding the device open (its stdin), as a VM or a tool would.
  const fd = openSync(dev, 'r');
  const holder = spawn('sleep', ['3600'], { stdio: [fd, 'ignore', 'ignore'] });
  closeSync(fd);
  const holderExit = new Promise<void>((resolve) => holder.on('exit', () => resolve()));
  s.cleanups.push(() => void holder.kill('SIGKILL'));
  checkEqual(readlinkSync(`/proc/${holder.pid}/fd/0`), dev, 'the holder has the device open');

  await step('terminate_connection (normal) while held: pending, the agent reports in_use', async () => {
    const r = await s.api.terminateConnection(volumeId, s.connector);
    observe('terminate (normal)', r);
    checkEqual(r.pending, [attachmentId], 'pending');
    checkEqual(r.revoked, false, 'revoked');
    const a = await s.waitAttachment(attachmentId, 'error in_use reported', (x) =>
      x.agent?.state === 'error' && x.agent.error?.code === 'in_use' ? x : undefined,
    );
    observe('report', a.agent);
    checkEqual(a.status, 'detaching', 'attachment status');
    check(
      a.agent!.error!.message.includes(`pid ${holder.pid}`),
      `the error names the holder (pid ${holder.pid}): ${a.agent!.error!.message}`,
    );
    checkEqual(a.agent!.device_path, dev, 'the reported device');
  });

  await step('a later pass refuses again; device, controllers and access all stay', async () => {
    await waitFor(
      'two refusals in the agent log',
      () =>
        agentLogLines(s.agent, 'detach not completed; retried on the next pass', attachmentId).length >= 2
          ? true
          : undefined,
      20_000,
    );
    check(existsSync(`/sys/block/${head}`), `${head} is still there`);
    checkEqual(pathViews(head).length, 3, 'paths');
    for (const c of controllers(s.nqn)) checkEqual(c.state, 'live', `${c.name}`);
    check(s.allowedHosts().includes(s.connector.nqn), 'the host is still allowed on the target');
    const vol = (await s.sim.state()).volumes.find((v: { uuid: string }) => v.uuid === data.vol_uuid);
    check(vol.acl.includes(s.connector.nqn), `the volume's ACL still holds the host: ${JSON.stringify(vol.acl)}`);
    const a = await s.api.attachment(attachmentId);
    checkEqual([a.status, a.agent?.state, a.agent?.error?.code], ['detaching', 'error', 'in_use'], 'attachment');
    // The device still works for its user.
    await writeChunks(dev, 0, 2, 'busy');
    checkEqual((await verifyChunks(dev, 0, 'busy', [1, 1])).problems, [], 'I/O while the detach is refused');
    observe('refusals', agentLogLines(s.agent, 'detach not completed; retried on the next pass', attachmentId).length);
  });

  await step(
    'terminate_connection with force: revoked at once, the agent tears the device down though it is open',
    async () => {
      const t0 = performance.now();
      const r = await s.api.terminateConnection(volumeId, s.connector, true);
      observe('terminate (force)', r);
      checkEqual(r.revoked, true, 'revoked');
      checkEqual(r.detached, [attachmentId], 'detached');
      const a = await s.waitDetached(attachmentId);
      observe('torn down after ms', Math.round(performance.now() - t0));
      checkEqual(a.agent!.error, null, 'no error');
      await waitAllDisconnected(s.nqn, head);
      checkEqual(s.allowedHosts(), [], 'allowed_hosts');
      observe('agent: forced detach', agentLogLines(s.agent, 'forced detach of a device in use').at(-1) ?? null);
    },
  );
  holder.kill('SIGKILL');
  await holderExit;
  await s.deleteVolume(volumeId);
}

// ------------------------------------------------------------------------------ 7. live paths

/**
 * Under O_DIRECT writes on two attached 3-replica volumes: a fourth node joins, A's replica
 * moves from node 2 to node 3 (0-based), node 1 is readdressed. The agent ends with exactly the
 * portals the backend serves for each volume; B's path through node 2 (the node A left) never
 * drops; no write fails; every block verifies; both report optimal with the new paths.
 */
async function agentLivePaths(s: AgentStack): Promise<void> {
  const a = await step('create, attach A', () => attachNew(s, 'A'));
  const b = await step('create, attach B', () => attachNew(s, 'B'));
  const base = Math.min(...a.portals.map((p) => p[1]));
  const [p0, p1, p2] = [base, base + 1, base + 2];
  const node1 = await simNodeOf(s, a.portals.find((p) => p[1] === p1)!);
  const logMark = (await kernelLog()).length;
  const wa = new BackgroundWriter(a.view.agent!.device_path!, 0, 8, 'live-a').start();
  const wb = new BackgroundWriter(b.view.agent!.device_path!, 0, 8, 'live-b').start();
  // B's path through node 2, from sysfs, every 25 ms: it must stay live while A leaves node 2.
  const headB = headByUuid(b.data.vol_uuid);
  check(headB, 'B has a head');
  const bPath2 = new Sampler(() => pathViews(headB).find((v) => v.trsvcid === String(p2))?.controllerState ?? null, 25);
  let added: { uuid: string; index: number; port: number } | null = null;
  // Undo the cluster changes for the next part: the old address back, the added node gone.
  s.undoClusterChanges(node1.index, p1, () => added?.index ?? null);
  try {
    await wa.waitForWrites(4, 'A before the changes');
    await wb.waitForWrites(4, 'B before the changes');
    await step('a fourth node joins: nothing changes for either volume', async () => {
      const r = await s.sim.addNode();
      checkEqual(r.status, 201, 'POST /sim/v1/nodes');
      added = r.body;
      checkEqual(added!.index, 3, 'the new node index');
      checkEqual(added!.port, base + 3, 'the new node port');
    });
    await step("A's replica moves from node 2 to node 3: A follows, B keeps node 2", async () => {
      const t0 = performance.now();
      const r = await s.sim.moveReplica(a.data.vol_uuid, 2, 3);
      checkEqual(r.status, 200, 'replica move');
      const after = await s.waitLivePorts(a.attachmentId, 'A', [p0, p1, base + 3], 60_000);
      observe('A followed the move after ms', Math.round(performance.now() - t0));
      observe('A after the move', after.agent);
      await wa.waitForWrites(4, 'A after the move');
      const bNow = await s.api.attachment(b.attachmentId);
      checkEqual(livePorts(bNow.agent?.paths), [p0, p1, p2].join(','), "B's live paths after A's move");
    });
    await step('node 1 is readdressed: both volumes follow, the old controller goes', async () => {
      const pNew = base + 10;
      const t0 = performance.now();
      const r = await s.sim.setNodeAddress(node1.index, '127.0.0.1', pNew);
      checkEqual(r.status, 200, 'address change');
      await s.waitLivePorts(a.attachmentId, 'A', [p0, base + 3, pNew], 60_000);
      await s.waitLivePorts(b.attachmentId, 'B', [p0, p2, pNew], 60_000);
      observe('both followed the new address after ms', Math.round(performance.now() - t0));
      await waitFor(
        'one live controller per served port, none to the old address',
        () => {
          const byPort = controllersByPort(s.nqn);
          const okPorts =
            Object.keys(byPort).sort().join(',') === [p0, p2, base + 3, pNew].map(String).sort().join(',');
          return okPorts && Object.values(byPort).every((n) => n.length === 1) ? byPort : undefined;
        },
        30_000,
        () => controllersByPort(s.nqn),
      );
      await wa.waitForWrites(4, 'A after the readdress');
      await wb.waitForWrites(4, 'B after the readdress');
    });
  } finally {
    await wa.stop();
    await wb.stop();
    await bPath2.stop();
  }
  // Until the readdress step B's path via node 2 is sampled; it must never have left `live`.
  const states = bPath2.transitions().map((x) => x.value);
  observe("B's node-2 path over time", states);
  checkEqual([...new Set(states)], ['live'], "B's path through node 2 stayed live");
  for (const w of [wa, wb]) {
    observe(`writer ${w.tag}`, { chunkWrites: w.written, maxWriteMs: w.maxWriteMs, failures: w.failures });
    checkEqual(w.failures, [], `${w.tag}: write failures`);
    const { problems } = await w.verify();
    checkEqual(problems, [], `${w.tag}: every block written reads back`);
  }
  checkEqual(await ioErrorsSince(logMark), [], 'kernel I/O errors');
  await step('detach, delete', async () => {
    await detachAndDelete(s, a.volumeId, a.attachmentId);
    await detachAndDelete(s, b.volumeId, b.attachmentId);
  });
}

const parts: Part<AgentStack>[] = [
  { name: 'agent-attach', run: agentAttach },
  { name: 'agent-shared-subsystem', run: agentSharedSubsystem },
  { name: 'agent-failover', run: agentFailover },
  { name: 'agent-extend', run: agentExtend },
  { name: 'agent-killed', run: agentKilled },
  { name: 'agent-busy', run: agentBusy },
  { name: 'agent-live-paths', run: agentLivePaths },
];

await scenarioGroup('agent-native', {
  setup: async () => {
    checkEqual(readSys('/sys/module/nvme_core/parameters/multipath'), 'Y', 'nvme_core.multipath');
    const s = await startAgentStack();
    check(
      s.connector.nvme_native_multipath === true && s.connector.multipath === true,
      `native multipath connector: ${JSON.stringify(s.connector)}`,
    );
    return s;
  },
  parts,
  between: (s) => s.cleanUp(),
  diagnose: (s) => s?.diagnose(),
  teardown: async (s) => {
    await step('stop the agent, portalis serve and portalis sim (SIGTERM)', () => s.stop());
  },
});
