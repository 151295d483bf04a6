/**
 * Guest scenario group `nova-native` (native NVMe multipath): a Nova compute host. os-brick
 * (Debian's python3-os-brick, driven exactly as Debian's Nova drives it: `osbrick.py`) connects
 * and disconnects the volumes; the Portalis agent, when running, runs on the same host with that
 * host's token and the same host NQN (/etc/nvme/hostnqn) and only assists. One boot, one stack
 * (`portalis sim` on nvmet, `portalis serve`), os-brick's one Python process, and multipathd
 * (a Nova host with `volume_use_multipath` runs it: os-brick 6.1 refuses to build the connector
 * otherwise, see `startMultipathd` below).
 *
 * The Nova flow in every part: os-brick's connector (get_connector_properties) →
 * initialize_connection through the service with that connector (admin token, as Cinder's driver
 * calls it) → connect_volume(connection_info.data) → O_DIRECT I/O on the device it returned →
 * disconnect_volume(data + device_path, None) → terminate_connection. After terminate no
 * controller is left, in every part.
 *
 * - nova-osbrick-alone: no agent on the host (the baseline: a Nova host as it is without
 *   Portalis's agent).
 * - nova-agent-first: the agent runs before os-brick connects: it reports awaiting_host, then
 *   os-brick's device connected, and runs no `nvme connect`; os-brick neither fails nor warns.
 * - nova-agent-late: the agent starts after os-brick connected and reports what os-brick made.
 * - nova-host-detach: os-brick disconnects before terminate: the agent reports host_detached and
 *   no controller comes back over two recheck periods.
 * - nova-live-paths: a replica moves under I/O: the agent adds the new portal's path to
 *   os-brick's head and releases it after terminate; no write fails.
 *
 * os-brick runs with one in-process fix, the upstream one for its bug #2035811, without which
 * os-brick 6.1 finds no controller on Linux 6.1 (osbrick.py says why).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { AGENT_ENV, agentLogLines, Sampler, waitAttachment } from './agent.ts';
import { BackgroundWriter, verifyChunks, writeChunks } from './io.ts';
import {
  check,
  checkEqual,
  list,
  observe,
  readSys,
  runDir,
  scenarioGroup,
  sh,
  shAny,
  step,
  waitFor,
  type Part,
} from './lib.ts';
import {
  checkOneControllerPerPortal,
  controllers,
  controllersByPort,
  headByUuid,
  nvmeDisks,
  pathViews,
} from './nvme.ts';
import { type BrickAnswer, must, OsBrick } from './osbrick.ts';
import type { AttachmentView, Connector, NvmeofConnectionData } from './rest.ts';
import { PortalisProcess, startStack, type Stack } from './stack.ts';

const NVMET = '/sys/kernel/config/nvmet';
type Portal = [string, number, string];

/**
 * multipathd as a Nova host with `[libvirt] volume_use_multipath = True` runs it: Nova builds
 * its connector with enforce_multipath=True, and os-brick 6.1 then runs `multipathd show status`
 * and raises when it does not answer (BaseLinuxConnector.get_connector_properties); without
 * multipath the connector says `multipath: false` and the service hands out one portal. NVMe
 * devices are blacklisted: with native NVMe multipath the kernel multipaths them, and
 * multipath-tools 0.9.6 and later skip them on their own (0.9.4 is Debian 12's).
 */
async function startMultipathd(): Promise<ChildProcess> {
  writeFileSync('/etc/multipath.conf', 'defaults {\n  user_friendly_names no\n}\nblacklist {\n  devnode "^nvme"\n}\n');
  const log = openSync(path.join(runDir, 'multipathd.log'), 'w');
  const child = spawn('multipathd', ['-d', '-s'], { stdio: ['ignore', log, log], detached: true });
  await waitFor(
    'multipathd to answer',
    async () => {
      if (child.exitCode !== null) throw new Error(`multipathd exited ${child.exitCode}`);
      const r = await shAny('multipathd', ['show', 'status']);
      return r.code === 0 ? r.stdout.trim() : undefined;
    },
    30_000,
  );
  return child;
}

/** Where the agent finds `nvme`: a wrapper that records each call, then runs nvme-cli. */
const AGENT_NVME_DIR = '/tmp/portalis-agent-bin';
const AGENT_NVME_LOG = '/tmp/portalis-agent-nvme.log';

/**
 * The agent's `nvme`: appends its arguments to AGENT_NVME_LOG and runs the real nvme-cli. Every
 * nvme-cli call the agent makes is there (it resolves `nvme` on its PATH), so "the agent ran no
 * `nvme connect`" is read from it rather than inferred from the agent's own log.
 */
async function installAgentNvmeWrapper(): Promise<void> {
  const real = (await sh('sh', ['-c', 'command -v nvme'])).trim();
  mkdirSync(AGENT_NVME_DIR, { recursive: true });
  writeFileSync(
    path.join(AGENT_NVME_DIR, 'nvme'),
    `#!/bin/sh\nprintf '%s\\n' "$*" >> ${AGENT_NVME_LOG}\nexec ${real} "$@"\n`,
  );
  chmodSync(path.join(AGENT_NVME_DIR, 'nvme'), 0o755);
  writeFileSync(AGENT_NVME_LOG, '');
}

/** Every nvme-cli call of every agent so far, one line each (`connect -t tcp -a …`). */
function agentNvmeCalls(): string[] {
  try {
    return readFileSync(AGENT_NVME_LOG, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** The agent's `nvme connect` calls after the first `mark` calls. */
const agentConnectsSince = (mark: number) =>
  agentNvmeCalls()
    .slice(mark)
    .filter((l) => l.startsWith('connect '));

/** The shared state of the group: the stack, os-brick, and (in the agent parts) the agent. */
class NovaHost {
  /** Volumes a part created and has not deleted yet (the clean-up deletes them). */
  readonly volumes = new Set<string>();
  /** Clean-up actions a part registered, run between parts after the volumes are gone. */
  readonly cleanups: (() => void | Promise<void>)[] = [];

  constructor(
    readonly stack: Stack,
    readonly brick: OsBrick,
    /** os-brick's connector, as Nova sends it to Cinder. */
    readonly connector: Connector,
    /** The cluster's one subsystem NQN. */
    readonly nqn: string,
    readonly multipathd: ChildProcess,
  ) {}

  /** Every agent started, in order; the last one is the current (running or stopped). */
  readonly agents: PortalisProcess[] = [];
  /** The host's agent token (POST /v1/hosts), issued when the first agent starts. */
  private token: string | null = null;

  get api() {
    return this.stack.serviceApi;
  }

  get agent(): PortalisProcess | null {
    return this.agents.at(-1) ?? null;
  }

  /**
   * Starts `portalis agent` with the host's token (issued once, for os-brick's host NQN: the
   * agent and os-brick share /etc/nvme/hostnqn), the kernel tests' agent settings (recheck every
   * 2 s) and `nvme` on its PATH recording every call (`agentNvmeCalls`); waits until it has
   * registered. Returns the ms from spawn to registered.
   */
  async startAgent(): Promise<number> {
    this.token ??= await this.api.issueHostToken(this.connector.nqn, this.connector.host);
    const before = (await this.api.host(this.connector.nqn)).registered_at;
    const n = this.agents.length + 1;
    const agent = new PortalisProcess(n === 1 ? 'agent' : `agent-${n}`, ['agent'], {
      PORTALIS_URL: this.api.url,
      PORTALIS_TOKEN: this.token,
      ...AGENT_ENV,
      PATH: `${AGENT_NVME_DIR}:${process.env.PATH}`,
    });
    this.agents.push(agent);
    await waitFor(
      `${agent.name} to register with the service`,
      async () => {
        agent.checkRunning();
        const h = await this.api.host(this.connector.nqn);
        return h.registered_at && h.registered_at !== before ? h : undefined;
      },
      120_000,
    );
    return Math.round(performance.now() - agent.startedAt);
  }

  /** An agent running: the current one, or a new one. */
  async ensureAgent(): Promise<PortalisProcess> {
    if (!this.agent?.running) await step('start portalis agent and wait for its registration', () => this.startAgent());
    return this.agent!;
  }

  /** No agent running (SIGTERM; it must exit 0). */
  async stopAgent(): Promise<void> {
    const a = this.agent;
    if (!a?.running) return;
    const exit = await a.stop();
    checkEqual({ code: exit.code, killed: exit.killed }, { code: 0, killed: false }, `${a.name} exits 0 on SIGTERM`);
  }

  /** Polls the attachment until `accept` returns something; the agent must stay up meanwhile. */
  waitAttachment<T>(
    id: string,
    what: string,
    accept: (a: AttachmentView) => T | undefined,
    deadlineMs = 30_000,
  ): Promise<T> {
    return waitAttachment(this.api, this.agent, id, what, accept, deadlineMs);
  }

  get sim() {
    return this.stack.simApi;
  }

  /** The host NQNs nvmet lets into the subsystem. */
  allowedHosts(): string[] {
    return list(`${NVMET}/subsystems/${this.nqn}/allowed_hosts`);
  }

  async createVolume(sizeGb = 1, replicas = 3): Promise<string> {
    const id = randomUUID();
    this.volumes.add(id);
    await this.api.createVolume({ id, size_gb: sizeGb, replicas });
    return id;
  }

  async deleteVolume(id: string): Promise<void> {
    await this.api.deleteVolume(id);
    this.volumes.delete(id);
  }

  /**
   * Puts the host back to nothing attached, whatever the last part left: force-detaches every
   * live attachment of the host, disconnects any controller still there one at a time (as
   * os-brick would: `nvme disconnect -d`), deletes the parts' volumes, runs the parts' clean-up
   * actions and checks the host is revoked on the target.
   */
  async cleanUp(): Promise<void> {
    const live = (
      (await this.api.attachments({ host_nqn: this.connector.nqn })).attachments as AttachmentView[]
    ).filter((a) => ['attaching', 'attached', 'detaching'].includes(a.status));
    for (const a of live) {
      console.log(`  clean-up: force-detaching attachment ${a.id} (${a.status}) of volume ${a.volume_id}`);
      await this.api.terminateConnection(a.volume_id, this.connector, true);
    }
    for (const c of controllers(this.nqn)) {
      console.log(`  clean-up: controller ${c.name} (${c.address.trsvcid}, ${c.state}) left: nvme disconnect -d`);
      await shAny('nvme', ['disconnect', '-d', `/dev/${c.name}`]);
    }
    await waitFor(
      'no controller and no NVMe device left',
      () => (controllers(this.nqn).length === 0 && nvmeDisks().length === 0 ? true : undefined),
      45_000,
      () => ({ controllers: controllers(this.nqn), disks: nvmeDisks() }),
    );
    for (const v of [...this.volumes]) {
      await this.api.deleteVolume(v, true);
      this.volumes.delete(v);
    }
    for (const c of this.cleanups.splice(0)) await c();
    await waitFor(
      'the host to be revoked on the target',
      () => (this.allowedHosts().includes(this.connector.nqn) ? undefined : true),
      15_000,
    );
  }

  diagnose(): void {
    for (const a of this.agents.slice(-2)) console.log(`--- ${a.name}.log (tail)\n${a.tail(40)}`);
    console.log(`--- the agents' nvme calls\n${agentNvmeCalls().slice(-20).join('\n')}`);
    console.log(`--- osbrick.log (tail)\n${this.brick.tail(40)}`);
    console.log(
      `--- service.log (tail)\n${this.stack.service.tail(25)}\n--- sim.log (tail)\n${this.stack.sim.tail(15)}`,
    );
    console.log(`--- controllers: ${JSON.stringify(controllers(this.nqn))}`);
  }
}

/** The nvme commands in an os-brick call's command list (`nvme connect -a …`), by verb. */
function nvmeCommands(a: BrickAnswer<unknown>, verb: string): string[] {
  return a.commands.filter((c) => c.startsWith(`nvme ${verb} `));
}

/** The value after `flag` in a command line, e.g. `-s` → the port. */
function flagValue(cmd: string, flag: string): string | undefined {
  const words = cmd.split(/\s+/);
  const i = words.indexOf(flag);
  return i >= 0 ? words[i + 1] : undefined;
}

/**
 * os-brick's connect ran one `nvme connect` per portal, with exactly the options os-brick 6.1
 * passes (`-t tcp -n <nqn> -Q 128 -l -1`, `-q <host_nqn>` when the connection info names it).
 */
function checkBrickConnects(a: BrickAnswer<unknown>, data: NvmeofConnectionData, portals: Portal[]): void {
  const connects = nvmeCommands(a, 'connect');
  checkEqual(
    connects.map((c) => Number(flagValue(c, '-s'))).sort(),
    portals.map((p) => p[1]).sort(),
    `os-brick's nvme connect per portal (${JSON.stringify(connects)})`,
  );
  for (const c of connects) {
    checkEqual(flagValue(c, '-n'), data.target_nqn, `${c}: -n`);
    checkEqual([flagValue(c, '-t'), flagValue(c, '-Q'), flagValue(c, '-l')], ['tcp', '128', '-1'], `${c}: -t -Q -l`);
    if (data.host_nqn) checkEqual(flagValue(c, '-q'), data.host_nqn, `${c}: -q`);
  }
}

/** No WARNING or ERROR from os-brick during a call (a race with another program is one). */
function checkNoWarnings(a: BrickAnswer<unknown>, what: string): void {
  checkEqual(a.warnings, [], `what os-brick logged at WARNING or above during ${what}`);
}

interface Initialized {
  volumeId: string;
  attachmentId: string;
  data: NvmeofConnectionData;
  portals: Portal[];
  initializeMs: number;
}

interface Attached extends Initialized {
  /** The device os-brick returned (`/dev/nvmeXnY`). */
  device: string;
  /** os-brick's connect_volume, as timed inside Python (what Nova waits). */
  connectMs: number;
}

/** initialize_connection with os-brick's connector (Cinder's driver passes Nova's connector on). */
async function novaInitialize(n: NovaHost, volumeId: string): Promise<Initialized> {
  const t0 = performance.now();
  const init = await n.api.initializeConnection(volumeId, n.connector);
  const initializeMs = Math.round(performance.now() - t0);
  const data = init.data;
  checkEqual(data.multipath_mode, 'native', 'multipath_mode for os-brick with native multipath');
  checkEqual(data.target_nqn, n.nqn, 'target_nqn is the cluster subsystem');
  const portals = (data.portals ?? []) as Portal[];
  checkEqual(portals.length, 3, 'portals of a 3-replica volume');
  return { volumeId, attachmentId: init.attachmentId, data, portals, initializeMs };
}

/**
 * os-brick's connect_volume. Checks that os-brick connected without failing or warning (a race
 * with another program is a warning, a portal it could not connect an error), with one
 * `nvme connect` per portal, and returned the volume's one head.
 */
async function brickConnect(n: NovaHost, init: Initialized): Promise<Attached> {
  const a = await n.brick.connect(init.data);
  const res = must(a, 'connect_volume');
  observe('os-brick connect_volume', { ms: a.ms, commands: a.commands, warnings: a.warnings });
  checkNoWarnings(a, 'connect_volume');
  checkBrickConnects(a, init.data, init.portals);
  checkEqual(res.type, 'block', 'connect_volume type');
  const head = headByUuid(init.data.vol_uuid);
  check(head, `exactly one head device carries ${init.data.vol_uuid}`);
  checkEqual(res.path, `/dev/${head}`, "os-brick's device is the volume's head");
  return { ...init, device: res.path, connectMs: a.ms };
}

/** Nova's attach: initialize_connection, then os-brick's connect_volume. */
async function novaAttach(n: NovaHost, volumeId: string): Promise<Attached> {
  return brickConnect(n, await novaInitialize(n, volumeId));
}

/** O_DIRECT pattern write and read back through os-brick's device. */
async function ioRoundTrip(dev: string, tag: string, mib = 8): Promise<void> {
  const writeMs = await writeChunks(dev, 0, mib, tag);
  const { problems, readMs } = await verifyChunks(dev, 0, tag, new Array(mib).fill(1));
  checkEqual(problems, [], `data read back through ${dev}`);
  observe(`O_DIRECT ${mib} MiB`, { writeMs, readMs });
}

/** Nova's detach, first half: os-brick's disconnect_volume(data + device_path, None). */
async function novaDisconnect(n: NovaHost, at: Attached): Promise<BrickAnswer<null>> {
  const a = await n.brick.disconnect(at.data, at.device);
  must(a, 'disconnect_volume');
  observe('os-brick disconnect_volume', { ms: a.ms, commands: a.commands, warnings: a.warnings });
  checkNoWarnings(a, 'disconnect_volume');
  return a;
}

/** Nova's detach, second half (Cinder's attachment_delete): terminate_connection. */
async function novaTerminate(n: NovaHost, at: Attached): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const r = await n.api.terminateConnection(at.volumeId, n.connector);
  observe('terminate_connection', { ms: Math.round(performance.now() - t0), answer: r });
  return r;
}

/** After terminate: no controller of the subsystem, no NVMe device, the host revoked. */
async function checkNothingLeft(n: NovaHost, what: string): Promise<void> {
  await waitFor(
    `no controller and no NVMe device left (${what})`,
    () => (controllers(n.nqn).length === 0 && nvmeDisks().length === 0 ? true : undefined),
    30_000,
    () => ({ controllers: controllers(n.nqn), disks: nvmeDisks() }),
  );
  await waitFor(
    'the host revoked on the target',
    () => (n.allowedHosts().includes(n.connector.nqn) ? undefined : true),
    15_000,
    () => n.allowedHosts(),
  );
}

// ------------------------------------------------------------------------------ os-brick alone

async function osbrickAlone(n: NovaHost): Promise<void> {
  await n.stopAgent();
  const volumeId = await n.createVolume();
  const at = await step('initialize_connection with os-brick connector, os-brick connect_volume', () =>
    novaAttach(n, volumeId),
  );
  observe('connection_info.data', at.data);
  observe('attach ms', { initialize: at.initializeMs, connect_volume: at.connectMs });
  await step('one live controller per portal; three paths under the head', () => {
    const byPort = checkOneControllerPerPortal(n.nqn, at.portals);
    const views = pathViews(path.basename(at.device));
    checkEqual(views.length, 3, `paths under ${at.device}`);
    observe('controllers', byPort);
    observe('paths', views);
  });
  await step('O_DIRECT write and read back 8 MiB through the device os-brick returned', () =>
    ioRoundTrip(at.device, 'alone'),
  );
  const d = await step('os-brick disconnect_volume', () => novaDisconnect(n, at));
  checkEqual(nvmeCommands(d, 'disconnect').length, 3, `os-brick's nvme disconnect per controller: ${d.commands}`);
  check(!existsSync(`/sys/block/${path.basename(at.device)}`), `${at.device} is gone after disconnect_volume`);
  checkEqual(controllers(n.nqn), [], 'controllers after disconnect_volume');
  await step('terminate_connection revokes the host; nothing left', async () => {
    const r = await novaTerminate(n, at);
    checkEqual(r.revoked, true, 'terminate_connection revoked the host (no agent on it)');
    await checkNothingLeft(n, 'after terminate');
  });
  await n.deleteVolume(volumeId);
}

// ------------------------------------------------------------------------------ with the agent

/** The service's record of who connects the attachment: the host, with the portals it was handed. */
async function checkHostConnected(n: NovaHost, init: Initialized): Promise<void> {
  const a = await n.api.attachment(init.attachmentId);
  checkEqual(a.connected_by, 'host', "connected_by for an initialize with os-brick's connector");
  checkEqual(a.host_portals, init.portals, 'host_portals: the portals handed to the host');
}

/** The attachment's cell in the service's matrix (GET /v1/health/multipath). */
async function matrixCell(n: NovaHost, volumeId: string, attachmentId: string) {
  const m = await n.api.http.expect([200], 'GET', `/v1/health/multipath?volume_id=${volumeId}`);
  return (m.volumes as { hosts: { attachment_id: string; health: string; state: string }[] }[])
    .flatMap((v) => v.hosts)
    .find((c) => c.attachment_id === attachmentId);
}

/** The agent's first report on a host-connected attachment the host has not connected yet. */
async function waitAwaitingHost(n: NovaHost, init: Initialized): Promise<AttachmentView> {
  const a = await n.waitAttachment(init.attachmentId, 'reported awaiting_host', (x) =>
    x.agent?.state === 'awaiting_host' ? x : undefined,
  );
  const cell = await matrixCell(n, init.volumeId, init.attachmentId);
  checkEqual([cell?.state, cell?.health], ['awaiting_host', 'pending'], "the matrix's cell while awaiting the host");
  checkEqual(controllers(n.nqn), [], 'controllers while awaiting the host (the agent connects nothing)');
  observe('awaiting_host report', { health: a.health, agent: a.agent, cell });
  return a;
}

/**
 * The agent reports os-brick's device connected: os-brick's path, the portals' live paths,
 * health optimal, each reported controller the one sysfs shows for that port.
 */
async function waitAgentConnected(n: NovaHost, at: Attached, ports: number[]): Promise<AttachmentView> {
  const want = [...ports].sort((x, y) => x - y);
  const a = await n.waitAttachment(
    at.attachmentId,
    `reported connected, ${at.device}, live paths ${want.join(',')}, optimal`,
    (x) =>
      x.agent?.state === 'connected' &&
      x.agent.device_path === at.device &&
      x.health === 'optimal' &&
      JSON.stringify(
        x.agent.paths
          .filter((p) => p.state === 'live')
          .map((p) => p.port)
          .sort((p, q) => p - q),
      ) === JSON.stringify(want)
        ? x
        : undefined,
    45_000,
  );
  const byPort = controllersByPort(n.nqn);
  for (const p of a.agent!.paths.filter((x) => x.state === 'live'))
    checkEqual([p.controller], byPort[String(p.port)], `the reported controller of port ${p.port} is sysfs's`);
  return a;
}

/**
 * Nova's detach with the agent on the host: os-brick's disconnect_volume, then
 * terminate_connection, which for a host-connected attachment revokes at once (os-brick has
 * disconnected already); the agent then reports the attachment disconnected and nothing is left.
 */
async function novaDetachWithAgent(n: NovaHost, at: Attached): Promise<void> {
  const d = await step('os-brick disconnect_volume', () => novaDisconnect(n, at));
  checkEqual(nvmeCommands(d, 'disconnect').length, 3, `os-brick's nvme disconnect per controller: ${d.commands}`);
  await step('terminate_connection: revoked at once; the agent reports disconnected; nothing left', async () => {
    const t0 = performance.now();
    const r = await novaTerminate(n, at);
    checkEqual(
      [r.revoked, r.pending],
      [true, []],
      'terminate_connection of a host-connected attachment: revoked, pending',
    );
    const a = await n.waitAttachment(at.attachmentId, 'detached, reported disconnected', (x) =>
      x.status === 'detached' && x.agent?.state === 'disconnected' ? x : undefined,
    );
    observe('detached and reported disconnected after ms', Math.round(performance.now() - t0));
    observe('attachment after detach', { status: a.status, health: a.health, agent: a.agent });
    await checkNothingLeft(n, 'after terminate');
  });
}

// 1. The agent already runs when os-brick connects.
async function agentFirst(n: NovaHost): Promise<void> {
  await n.ensureAgent();
  const mark = agentNvmeCalls().length;
  const volumeId = await n.createVolume();
  const init = await step('initialize_connection with os-brick connector: host-connected', async () => {
    const i = await novaInitialize(n, volumeId);
    await checkHostConnected(n, i);
    return i;
  });
  await step('the agent reports awaiting_host and connects nothing', () => waitAwaitingHost(n, init));
  // What the service shows while os-brick connects, every 100 ms (an observation: the agent
  // may see the device with one path before os-brick has connected the others).
  const shown = new Sampler(async () => {
    const a = await n.api.attachment(init.attachmentId);
    return `${a.agent?.state}/${a.health}/${a.agent?.paths.filter((p) => p.state === 'live').length ?? 0} live`;
  }, 100);
  let at: Attached;
  let a: AttachmentView;
  try {
    at = await step('os-brick connect_volume: no failure, no warning, one nvme connect per portal', () =>
      brickConnect(n, init),
    );
    a = await step("the agent reports os-brick's device connected, three live paths, optimal", async () => {
      const t0 = performance.now();
      const x = await waitAgentConnected(
        n,
        at,
        at.portals.map((p) => p[1]),
      );
      observe('connected reported after ms (from connect_volume returned)', Math.round(performance.now() - t0));
      return x;
    });
  } finally {
    await shown.stop();
  }
  observe('agent state/health/live paths shown while os-brick connected', shown.transitions());
  observe('attach ms', { initialize: at.initializeMs, connect_volume: at.connectMs });
  await step('one controller per portal; the agent ran no nvme connect', async () => {
    observe('report', a.agent);
    observe('controllers', checkOneControllerPerPortal(n.nqn, at.portals));
    checkEqual(agentConnectsSince(mark), [], "the agent's nvme connect calls");
  });
  await step("O_DIRECT write and read back 8 MiB through os-brick's device", () => ioRoundTrip(at.device, 'first'));
  await novaDetachWithAgent(n, at);
  checkEqual(agentConnectsSince(mark), [], "the agent's nvme connect calls over the whole attach and detach");
  observe(
    'agent log: the host connected the device',
    agentLogLines(n.agent!, 'the host connected the device', at.attachmentId),
  );
  await n.deleteVolume(volumeId);
}

// 2. The agent starts after os-brick connected.
async function agentLate(n: NovaHost): Promise<void> {
  await step('no agent running', () => n.stopAgent());
  const volumeId = await n.createVolume();
  const at = await step('initialize_connection, os-brick connect_volume (no agent)', async () => {
    const i = await novaInitialize(n, volumeId);
    await checkHostConnected(n, i);
    return brickConnect(n, i);
  });
  const before = checkOneControllerPerPortal(n.nqn, at.portals);
  observe('controllers before the agent', before);
  const mark = agentNvmeCalls().length;
  await step('start the agent: it observes the device and reports it connected, connecting nothing', async () => {
    const registeredMs = await n.startAgent();
    const t0 = performance.now();
    const a = await waitAgentConnected(
      n,
      at,
      at.portals.map((p) => p[1]),
    );
    observe('agent started', { registeredMs, connectedReportedAfterMs: Math.round(performance.now() - t0) });
    observe('report', a.agent);
    checkEqual(controllersByPort(n.nqn), before, "the controllers are os-brick's, unchanged");
    checkEqual(agentConnectsSince(mark), [], "the agent's nvme connect calls");
  });
  await step("O_DIRECT write and read back 8 MiB through os-brick's device", () => ioRoundTrip(at.device, 'late'));
  await novaDetachWithAgent(n, at);
  checkEqual(agentConnectsSince(mark), [], "the agent's nvme connect calls over the whole part");
  await n.deleteVolume(volumeId);
}

// 3. os-brick disconnects while the attachment is still live (before Cinder's attachment_delete).
async function hostDetach(n: NovaHost): Promise<void> {
  await n.ensureAgent();
  const mark = agentNvmeCalls().length;
  const volumeId = await n.createVolume();
  const init = await novaInitialize(n, volumeId);
  await waitAwaitingHost(n, init);
  const at = await step('os-brick connect_volume; the agent reports connected', async () => {
    const x = await brickConnect(n, init);
    await waitAgentConnected(
      n,
      x,
      x.portals.map((p) => p[1]),
    );
    return x;
  });
  const d = await step('os-brick disconnect_volume (the attachment stays live)', () => novaDisconnect(n, at));
  checkEqual(nvmeCommands(d, 'disconnect').length, 3, `os-brick's nvme disconnect per controller: ${d.commands}`);
  checkEqual(controllers(n.nqn), [], 'controllers after disconnect_volume');
  const disconnectedAt = performance.now();
  // Every 100 ms from here: the subsystem's controllers, as sysfs shows them. Any is a failure.
  const watch = new Sampler(() => controllers(n.nqn).map((c) => `${c.name}:${c.address.trsvcid}:${c.state}`), 100);
  const backAt = () => watch.samples.find((x) => x.value.length > 0);
  try {
    const detached = await step('the agent reports host_detached; health detached', async () => {
      const a = await n.waitAttachment(at.attachmentId, 'reported host_detached', (x) =>
        x.agent?.state === 'host_detached' ? x : undefined,
      );
      observe('host_detached reported after ms', Math.round(performance.now() - disconnectedAt));
      observe('host_detached report', a.agent);
      checkEqual(a.status, 'attached', 'the attachment is still live in the service');
      checkEqual(a.health, 'detached', 'health of a host-detached attachment');
      const cell = await matrixCell(n, volumeId, at.attachmentId);
      checkEqual([cell?.state, cell?.health], ['host_detached', 'detached'], "the matrix's cell: state, health");
      return a;
    });
    await step('no controller comes back for two recheck periods and two report refreshes', async () => {
      // The agent re-checks every PORTALIS_AGENT_RECHECK_INTERVAL (2 s) and re-sends an unchanged
      // report every PORTALIS_AGENT_REPORT_INTERVAL (5 s). Done when the sampler has covered two
      // re-check periods and a second past them since the disconnect, and the service has seen the
      // host_detached report refreshed twice (the agent's loops ran all along); failed at once
      // when a sample shows a controller.
      const recheckMs = Number(AGENT_ENV.PORTALIS_AGENT_RECHECK_INTERVAL) * 1000;
      const reportTimes = new Set<string>([detached.agent!.reported_at]);
      await waitFor(
        'two recheck periods and two refreshed host_detached reports without a controller',
        async () => {
          const back = backAt();
          if (back) throw new Error(`a controller came back ${back.at} ms after the disconnect: ${back.value}`);
          const a = await n.api.attachment(at.attachmentId);
          checkEqual(a.agent?.state, 'host_detached', 'the reported state meanwhile');
          reportTimes.add(a.agent!.reported_at);
          const covered = performance.now() - disconnectedAt >= 2 * recheckMs + 1000;
          return covered && reportTimes.size >= 3 ? true : undefined;
        },
        30_000,
        () => ({ reports: [...reportTimes], samples: watch.samples.length }),
      );
    });
  } finally {
    await watch.stop();
  }
  const last = watch.samples.at(-1);
  observe('controller samples after the disconnect', { count: watch.samples.length, spanMs: last?.at });
  checkEqual(
    watch.transitions().map((x) => x.value),
    [[]],
    'controllers seen after the disconnect (every sample)',
  );
  checkEqual(agentConnectsSince(mark), [], "the agent's nvme connect calls");
  await step('terminate_connection: revoked at once; the agent reports disconnected; nothing left', async () => {
    const r = await novaTerminate(n, at);
    checkEqual([r.revoked, r.pending], [true, []], 'terminate_connection: revoked, pending');
    await n.waitAttachment(at.attachmentId, 'detached, reported disconnected', (x) =>
      x.status === 'detached' && x.agent?.state === 'disconnected' ? x : undefined,
    );
    await checkNothingLeft(n, 'after terminate');
  });
  checkEqual(agentConnectsSince(mark), [], "the agent's nvme connect calls over the whole part");
  await n.deleteVolume(volumeId);
}

// 4. A replica moves while os-brick's device carries I/O.
async function livePaths(n: NovaHost): Promise<void> {
  await n.ensureAgent();
  const volumeId = await n.createVolume();
  const init = await novaInitialize(n, volumeId);
  const at = await step('os-brick connect_volume; the agent reports connected', async () => {
    const x = await brickConnect(n, init);
    await waitAgentConnected(
      n,
      x,
      x.portals.map((p) => p[1]),
    );
    return x;
  });
  const head = path.basename(at.device);
  const hostControllers = checkOneControllerPerPortal(n.nqn, at.portals);
  const base = Math.min(...at.portals.map((p) => p[1]));
  const newPort = base + 3;
  const mark = agentNvmeCalls().length;
  let added: { index: number; port: number } | null = null;
  // The added node goes again once the volume is deleted (it then holds no replica).
  n.cleanups.push(async () => {
    if (added) await n.sim.removeNode(added.index);
  });
  const writer = new BackgroundWriter(at.device, 0, 8, 'nova-live').start();
  // os-brick's head's paths every 50 ms: the new one must join the same head.
  const paths = new Sampler(() => pathViews(head).map((v) => `${v.trsvcid}:${v.controllerState}:${v.anaState}`), 50);
  try {
    await writer.waitForWrites(4, 'before the move');
    await step('a fourth node joins; the replica moves from node 2 to node 3', async () => {
      const r = await n.sim.addNode();
      checkEqual(r.status, 201, 'POST /sim/v1/nodes');
      added = r.body;
      checkEqual(added!.port, newPort, 'the new node port');
      checkEqual((await n.sim.moveReplica(at.data.vol_uuid, 2, 3)).status, 200, 'replica move');
    });
    await step("the agent adds the new portal's path under os-brick's head; writes go on", async () => {
      const t0 = performance.now();
      const v = await waitFor(
        `a live path to port ${newPort} under ${head}`,
        () => pathViews(head).find((x) => x.trsvcid === String(newPort) && x.controllerState === 'live'),
        60_000,
        () => pathViews(head),
      );
      observe('new path under the head after ms', Math.round(performance.now() - t0));
      observe('new path', v);
      const a = await n.waitAttachment(at.attachmentId, `reported live path to port ${newPort}`, (x) =>
        x.agent?.state === 'connected' &&
        x.agent.device_path === at.device &&
        x.agent.paths.some((p) => p.port === newPort && p.state === 'live')
          ? x
          : undefined,
      );
      observe('report after the move', { health: a.health, agent: a.agent });
      const connects = agentConnectsSince(mark);
      checkEqual(connects.length, 1, `the agent's nvme connect calls (${JSON.stringify(connects)})`);
      checkEqual(flagValue(connects[0]!, '-s'), String(newPort), 'its port');
      for (const [port, names] of Object.entries(hostControllers))
        checkEqual(controllersByPort(n.nqn)[port], names, `os-brick's controller to port ${port} is still there`);
      await writer.waitForWrites(4, 'after the move');
    });
  } finally {
    await writer.stop();
    await paths.stop();
  }
  observe("the head's paths over time", paths.transitions());
  observe('writer', { chunkWrites: writer.written, maxWriteMs: writer.maxWriteMs, failures: writer.failures });
  checkEqual(writer.failures, [], 'write failures');
  checkEqual((await writer.verify()).problems, [], 'every block written reads back');
  // Nova's stored connection_info still names the three portals of the attach: os-brick
  // disconnects its own three controllers; the one the agent added goes after terminate.
  await novaDetachWithAgent(n, at);
  observe(
    'agent log: added controllers released',
    agentLogLines(n.agent!, 'added controllers released', at.attachmentId),
  );
  await n.deleteVolume(volumeId);
}

/**
 * A part, plus a check of os-brick's own DEBUG log file over the whole part: no line at WARNING
 * or ERROR (a "Race condition with some other application" warning, a portal it "Could not
 * connect", a failed flush), whatever call logged it.
 */
function withBrickLog(run: (n: NovaHost) => Promise<void>): (n: NovaHost) => Promise<void> {
  return async (n) => {
    const mark = n.brick.logLines().length;
    await run(n);
    const bad = n.brick
      .logLines()
      .slice(mark)
      .filter((l) => / (WARNING|ERROR|CRITICAL) /.test(l));
    checkEqual(bad, [], "os-brick's log over the part: lines at WARNING or above");
  };
}

const parts: Part<NovaHost>[] = [
  { name: 'nova-osbrick-alone', run: withBrickLog(osbrickAlone) },
  { name: 'nova-agent-first', run: withBrickLog(agentFirst) },
  { name: 'nova-agent-late', run: withBrickLog(agentLate) },
  { name: 'nova-host-detach', run: withBrickLog(hostDetach) },
  { name: 'nova-live-paths', run: withBrickLog(livePaths) },
];

await scenarioGroup('nova-native', {
  setup: async () => {
    checkEqual(readSys('/sys/module/nvme_core/parameters/multipath'), 'Y', 'nvme_core.multipath');
    const databaseUrl = process.env.PORTALIS_KERNEL_DATABASE_URL;
    check(databaseUrl, 'the host side passed PORTALIS_KERNEL_DATABASE_URL');
    observe('kernel', readSys('/proc/sys/kernel/osrelease'));
    observe('nvme-cli', (await sh('nvme', ['version'])).trim());
    // os-brick's Python imports, multipathd and the stack's node programs start side by side.
    // Whatever started is stopped again when the setup fails: a running child would keep the
    // guest's node process (and the boot) alive until the timeout.
    const brick = OsBrick.spawn();
    const [mp, st] = await Promise.allSettled([
      step('start multipathd (a Nova multipath host runs it)', () => startMultipathd()),
      startStack({ databaseUrl }),
    ]);
    try {
      if (mp.status === 'rejected') throw mp.reason;
      if (st.status === 'rejected') throw st.reason;
      const readyMs = await step('os-brick (python3) ready', () => brick.ready());
      const version = await brick.version();
      observe('os-brick', { version, readyMs });
      const c = await step("os-brick's connector (Nova's get_volume_connector)", () =>
        brick.connector('10.0.2.15', 'nova-compute-1'),
      );
      const connector = must(c, 'get_connector_properties');
      observe('os-brick connector', { connector, warnings: c.warnings, commands: c.commands, ms: c.ms });
      checkEqual(connector.nqn, readSys('/etc/nvme/hostnqn'), "os-brick's nqn = /etc/nvme/hostnqn");
      checkEqual(
        [connector.multipath, connector.nvme_native_multipath],
        [true, true],
        'os-brick connector: multipath, nvme_native_multipath',
      );
      check(!('dm_multipath' in connector), "os-brick's connector has no dm_multipath key");
      const nqn = (await st.value.simApi.state()).cluster.subsystemNQN as string;
      await installAgentNvmeWrapper();
      return new NovaHost(st.value, brick, connector, nqn, mp.value);
    } catch (err) {
      brick.kill();
      if (mp.status === 'fulfilled') mp.value.kill('SIGKILL');
      if (st.status === 'fulfilled') await st.value.stop();
      throw err;
    }
  },
  parts,
  between: (n) => n.cleanUp(),
  diagnose: (n) => n?.diagnose(),
  teardown: async (n) => {
    await step('stop os-brick, multipathd, portalis serve and portalis sim', async () => {
      observe('os-brick stopped', await n.brick.stop());
      await shAny('multipathd', ['shutdown']);
      await n.stopAgent();
      observe('stack stopped', await n.stack.stop());
    });
  },
});
