/**
 * Guest side of the agent's kernel benchmark (run in a kernel-harness guest by
 * bench/agent-kernel.ts). One 3-replica volume on the simulator's nvmet plane, attached to two
 * host identities: this host's agent (through the service, as in the agent scenarios) and a
 * "bench" host NQN that only nvme-cli uses (the baselines). Rounds alternate the order of the
 * agent's attach/detach and the baselines; every figure is a measurement, nothing is asserted
 * about speed. Results go to `<run folder>/bench.json`.
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { run } from '../test/kernel/harness/exec.ts';
import { type AgentStack, agentLogLines, startAgentStack } from '../test/kernel/guest/agent.ts';
import { check, list, readSys, runDir, scenario, step, waitFor } from '../test/kernel/guest/lib.ts';
import { startMultipathd, stopMultipathd } from '../test/kernel/guest/multipathd.ts';
import { controllers } from '../test/kernel/guest/nvme.ts';
import type { NvmeofConnectionData } from '../test/kernel/guest/rest.ts';
import { repoRoot } from '../test/kernel/guest/stack.ts';

const MODE = process.env.PORTALIS_BENCH_MODE === 'dm' ? 'dm' : 'native';
const ROUNDS = Math.max(1, Number(process.env.PORTALIS_BENCH_ROUNDS ?? 5));
/** Rounds run first and left out of the figures (see the loop below). */
const WARMUP_ROUNDS = Math.max(0, Number(process.env.PORTALIS_BENCH_WARMUP_ROUNDS ?? 2));
const BENCH_ID = randomUUID();
const BENCH_NQN = `nqn.2014-08.org.nvmexpress:uuid:${BENCH_ID}`;

type Portal = [string, number, string];
const now = () => performance.now();
const roundMs = (v: unknown) => (typeof v === 'number' ? Math.round(v) : v);

/** Waits on a sync probe with a 2 ms pace (the baselines' device wait: as tight as a shell loop). */
async function tight<T>(what: string, probe: () => T | undefined, deadlineMs = 30_000): Promise<T> {
  const t0 = now();
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (now() - t0 > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** The agent's tunables (AGENT_ENV), so the baselines' connects do the same kernel work. */
function connectArgs(nqn: string, p: Portal): string[] {
  return [
    'connect',
    '-t',
    p[2],
    '-a',
    p[0],
    '-s',
    String(p[1]),
    '-n',
    nqn,
    '-q',
    BENCH_NQN,
    '-I',
    BENCH_ID,
    '--keep-alive-tmo=5',
    '--reconnect-delay=1',
    '--ctrl-loss-tmo=-1',
  ];
}

async function nvme(args: string[]): Promise<void> {
  const r = await run('nvme', args, { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`nvme ${args.join(' ')} exited ${r.code}: ${(r.stderr + r.stdout).trim()}`);
}

const benchControllers = (nqn: string) =>
  controllers(nqn).filter((c) => readSys(`/sys/class/nvme/${c.name}/hostnqn`) === BENCH_NQN);

/** The volume's head (native) or its plain path devices (DM), by UUID. */
function devicesOf(uuid: string): string[] {
  return list('/sys/block').filter(
    (d) => /^nvme\d+n\d+$/.test(d) && readSys(`/sys/block/${d}/wwid`) === `uuid.${uuid}`,
  );
}

function mapOf(uuid: string): string | undefined {
  return list('/sys/block').find(
    (d) => d.startsWith('dm-') && readSys(`/sys/block/${d}/dm/uuid`) === `mpath-uuid.${uuid}`,
  );
}

/** Baseline attach: the connects (parallel or serial), then the device as the agent waits for it. */
async function baselineAttach(nqn: string, portals: Portal[], uuid: string, parallel: boolean): Promise<number> {
  const t0 = now();
  if (parallel) await Promise.all(portals.map((p) => nvme(connectArgs(nqn, p))));
  else for (const p of portals) await nvme(connectArgs(nqn, p));
  if (MODE === 'native') {
    await tight('the head', () => (devicesOf(uuid).length ? true : undefined));
  } else {
    // The agent's own steps for DM: tell multipathd about each path device, wait for the map
    // holding all three.
    const added = new Set<string>();
    await tight('three path devices', () => (devicesOf(uuid).length === portals.length ? true : undefined));
    for (const d of devicesOf(uuid)) {
      added.add(d);
      await run('multipathd', ['add', 'path', d], { timeoutMs: 30_000 });
    }
    await tight('the map over every path', () => {
      const dm = mapOf(uuid);
      return dm && devicesOf(uuid).every((d) => list(`/sys/block/${d}/holders`).includes(dm)) ? true : undefined;
    });
  }
  return now() - t0;
}

/** Baseline detach: (DM: `multipath -f`), then `nvme disconnect -d` one controller after the other. */
async function baselineDetach(nqn: string, uuid: string, oneCall: boolean): Promise<number> {
  const t0 = now();
  if (MODE === 'dm') {
    const r = await run('multipath', ['-f', `uuid.${uuid}`], { timeoutMs: 30_000 });
    if (r.code !== 0 && mapOf(uuid)) throw new Error(`multipath -f: ${r.stderr}`);
  }
  if (oneCall) await nvme(['disconnect', '-n', nqn]);
  else for (const c of benchControllers(nqn)) await nvme(['disconnect', '-d', c.name]);
  await tight('the controllers gone', () => (benchControllers(nqn).length === 0 ? true : undefined));
  return now() - t0;
}

/** Epoch ms of the agent's `attachment changed` log line for this attachment and desire. */
function receivedAt(s: AgentStack, attachment: string, desired: string): number {
  const l = agentLogLines(s.agent, 'attachment changed', attachment)
    .filter((x) => x.desired === desired)
    .at(-1);
  check(l, `the agent logged receiving ${attachment} (${desired})`);
  return l.time as number;
}

/** Until the agent logs that the service took its report of `state` for the attachment. */
function waitReported(s: AgentStack, attachment: string, state: string): Promise<unknown> {
  return waitFor(
    `the agent reported ${attachment.slice(0, 8)} ${state}`,
    () => agentLogLines(s.agent, 'reported', attachment).find((l) => l.state === state),
    60_000,
  );
}

interface AgentRound {
  attachMs: number;
  connectorMs: number;
  toSubmitMs: number;
  health: string;
  trace: unknown;
  detachMs: number;
  detachTrace: unknown;
  initializeToReceivedMs: number;
}

async function agentRound(s: AgentStack, volumeId: string): Promise<AgentRound> {
  const initStarted = Date.now();
  const { attachmentId } = await s.attach(volumeId);
  // Wait on the agent's log (a file read here), not by polling the service: in the emulated
  // guest each GET costs the service 100-300 ms of the two vCPUs the agent's connects run on,
  // which the baselines, measured with nothing polling, never pay.
  await waitFor('the agent logged the attach', () => agentLogLines(s.agent, 'attached', attachmentId).at(-1), 60_000);
  // And its report delivered, before the service is asked anything: a GET racing the agent's
  // report queued the report behind it (100-300 ms of the guest's service each).
  await waitReported(s, attachmentId, 'connected');
  const a = await s.waitAttachment(attachmentId, 'connected', (x) => (x.agent?.state === 'connected' ? x : undefined));
  const got = receivedAt(s, attachmentId, 'connected');
  const attached = agentLogLines(s.agent, 'attached', attachmentId).at(-1);
  check(attached, 'the agent logged the attach');
  const reportedAt = Date.parse(String((a.agent as { reported_at?: string }).reported_at));
  await s.waitConnected(attachmentId, 3);
  await s.api.terminateConnection(volumeId, s.connector);
  await waitFor('the agent logged the detach', () => agentLogLines(s.agent, 'detached', attachmentId).at(-1), 60_000);
  await waitReported(s, attachmentId, 'disconnected');
  const d = await s.waitDetached(attachmentId);
  const gone = receivedAt(s, attachmentId, 'disconnected');
  const detached = agentLogLines(s.agent, 'detached', attachmentId).at(-1);
  await waitFor('the agent host controllers gone', () =>
    controllers(s.nqn).filter((c) => readSys(`/sys/class/nvme/${c.name}/hostnqn`) !== BENCH_NQN).length === 0
      ? true
      : undefined,
  );
  return {
    attachMs: reportedAt - got,
    connectorMs: attached.elapsedMs as number,
    toSubmitMs: attached.sinceReceivedMs as number,
    health: String(attached.health),
    trace: attached.trace,
    detachMs: Date.parse(String((d.agent as { reported_at?: string }).reported_at)) - gone,
    detachTrace: detached?.trace,
    initializeToReceivedMs: got - initStarted,
  };
}

/** `portalis agent attach|detach` wall time (spawn to exit), with the connector's own figures. */
async function cliRound(
  data: NvmeofConnectionData,
): Promise<{ attachMs: number; attachElapsedMs: number; detachMs: number; trace: unknown }> {
  const file = path.join('/tmp', `bench-ci-${randomUUID()}.json`);
  writeFileSync(file, JSON.stringify({ ...data, host_nqn: BENCH_NQN }));
  const cli = async (sub: string) => {
    const t0 = now();
    const r = await run(
      process.execPath,
      [path.join(repoRoot, 'bin', 'portalis.mjs'), 'agent', sub, '--connection-info', file],
      { timeoutMs: 120_000 },
    );
    const ms = now() - t0;
    if (r.code !== 0) throw new Error(`portalis agent ${sub} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return { ms, out: JSON.parse(r.stdout) as { elapsed_ms?: number; trace?: unknown } };
  };
  const a = await cli('attach');
  const d = await cli('detach');
  await tight('the controllers gone', () =>
    benchControllers(data.target_nqn ?? data.dm_replicas![0]!.target_nqn).length === 0 ? true : undefined,
  );
  return { attachMs: a.ms, attachElapsedMs: a.out.elapsed_ms ?? NaN, detachMs: d.ms, trace: a.out.trace };
}

await scenario(`bench-agent-${MODE}`, async () => {
  const multipathd =
    MODE === 'dm'
      ? await step('systemd-udevd and multipathd', () =>
          startMultipathd(
            'defaults {\n  user_friendly_names no\n  find_multipaths no\n  polling_interval 1\n  max_polling_interval 2\n}\n',
          ),
        )
      : null;
  // A generous start-up deadline: `portalis serve` under tsx in an emulated guest on a loaded
  // machine took minutes to answer.
  const s = await startAgentStack(MODE === 'dm' ? { PORTALIS_AGENT_DEVICE_TIMEOUT: '30' } : {}, {
    readyDeadlineMs: 480_000,
  });
  const out: Record<string, unknown> = { mode: MODE, rounds: ROUNDS, kernel: readSys('/proc/sys/kernel/osrelease') };
  try {
    const volumeId = randomUUID();
    // multiattach: the agent's host and the bench host hold it at once (the bench host's access
    // is what lets nvme-cli connect for the baselines; it has no agent).
    await s.api.createVolume({ id: volumeId, size_gb: 1, replicas: 3, multiattach: true });
    s.volumes.add(volumeId);
    const bench = await s.api.initializeConnection(volumeId, {
      ...s.connector,
      nqn: BENCH_NQN,
      host: 'bench-baseline',
      nvme_hostid: BENCH_ID,
    } as never);
    const data = bench.data;
    const uuid = data.vol_uuid;
    const portals: Portal[] = (data.portals ?? data.dm_replicas!.flatMap((r) => r.portals)) as Portal[];
    const nqn = data.target_nqn ?? data.dm_replicas![0]!.target_nqn;
    check(portals.length === 3, `three portals: ${JSON.stringify(portals)}`);
    const emptyRows = (): Record<string, number[]> => ({
      agentAttach: [],
      connectorElapsed: [],
      parallel: [],
      serial: [],
      agentDetach: [],
      disconnectSerial: [],
      disconnectOneCall: [],
    });
    const figures = emptyRows();
    const traces: unknown[] = [];
    const detachTraces: unknown[] = [];
    const rounds: unknown[] = [];
    // Warm-up rounds first, of all three, kept out of the figures: in the first two rounds of a
    // boot the guest's service answered the agent's report 1.4–1.7 s late (its code still cold,
    // under emulation), which measured the JIT, not the attach; the baselines warm their caches too.
    for (let i = -WARMUP_ROUNDS; i < ROUNDS; i++) {
      const warmUp = i < 0;
      const order = ['agent', 'parallel', 'serial'];
      for (let k = 0; k < ((i % 3) + 3) % 3; k++) order.push(order.shift()!); // rotate: each goes first in turn
      const round: Record<string, unknown> = { order, ...(warmUp ? { warmUp } : {}) };
      const rows = warmUp ? emptyRows() : figures;
      for (const what of order) {
        if (what === 'agent') {
          const r = await agentRound(s, volumeId);
          rows.agentAttach!.push(r.attachMs);
          rows.connectorElapsed!.push(r.connectorMs);
          rows.agentDetach!.push(r.detachMs);
          if (!warmUp) traces.push(r.trace);
          if (!warmUp) detachTraces.push(r.detachTrace);
          round.agent = r;
        } else {
          const ms = await baselineAttach(nqn, portals, uuid, what === 'parallel');
          rows[what]!.push(ms);
          const dms = await baselineDetach(nqn, uuid, what === 'serial');
          rows[what === 'serial' ? 'disconnectOneCall' : 'disconnectSerial']!.push(dms);
          round[what] = { attachMs: ms, detachMs: dms };
        }
      }
      const label = warmUp ? `warm-up ${i + WARMUP_ROUNDS + 1}` : `round ${i + 1}`;
      const shown = JSON.stringify(round, (k, v) => (k.endsWith('race') ? undefined : roundMs(v)));
      console.log(`  ${label}: ${shown}`);
      if (!warmUp) rounds.push(round);
    }
    const cli: unknown[] = [];
    for (let i = 0; i < 2; i++) cli.push(await step(`portalis agent attach/detach ${i + 1}`, () => cliRound(data)));
    Object.assign(out, { rows: figures, traces, detachTraces, rounds, cli });
    await s.api.terminateConnection(volumeId, { ...s.connector, nqn: BENCH_NQN } as never, true).catch(() => undefined);
  } finally {
    writeFileSync(path.join(runDir, 'bench.json'), `${JSON.stringify(out, null, 2)}\n`);
    await s.stop().catch((e) => console.log(`  stop: ${e}`));
    if (multipathd) await stopMultipathd(multipathd).catch(() => undefined);
  }
});
