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
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, openSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { verifyChunks, writeChunks } from './io.ts';
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
import { controllers, headByUuid, nvmeDisks, pathViews } from './nvme.ts';
import { type BrickAnswer, must, OsBrick } from './osbrick.ts';
import type { AttachmentView, Connector, NvmeofConnectionData } from './rest.ts';
import { startStack, type Stack } from './stack.ts';

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

  get api() {
    return this.stack.serviceApi;
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

/** Controllers of the subsystem per port (trsvcid): names. */
function controllersByPort(nqn: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const c of controllers(nqn)) (out[c.address.trsvcid ?? '?'] ??= []).push(c.name);
  return out;
}

/** Exactly one live controller per portal, and no other controller of the subsystem. */
function checkOneControllerPerPortal(nqn: string, portals: Portal[]): Record<string, string[]> {
  const byPort = controllersByPort(nqn);
  checkEqual(Object.keys(byPort).sort(), portals.map((p) => String(p[1])).sort(), 'ports with a controller');
  for (const [port, names] of Object.entries(byPort))
    checkEqual(names.length, 1, `controllers to port ${port} (${names.join(', ')})`);
  for (const c of controllers(nqn)) checkEqual(c.state, 'live', `${c.name} state`);
  return byPort;
}

interface Attached {
  volumeId: string;
  attachmentId: string;
  data: NvmeofConnectionData;
  portals: Portal[];
  /** The device os-brick returned (`/dev/nvmeXnY`). */
  device: string;
  ms: { initialize: number; connect: number };
}

/**
 * Nova's attach: initialize_connection with os-brick's connector, then os-brick's
 * connect_volume. Checks that os-brick connected without failing or warning, with one
 * `nvme connect` per portal, and returned the volume's one head.
 */
async function novaAttach(n: NovaHost, volumeId: string): Promise<Attached> {
  let t0 = performance.now();
  const init = await n.api.initializeConnection(volumeId, n.connector);
  const initialize = Math.round(performance.now() - t0);
  const data = init.data;
  checkEqual(data.multipath_mode, 'native', 'multipath_mode for os-brick with native multipath');
  checkEqual(data.target_nqn, n.nqn, 'target_nqn is the cluster subsystem');
  const portals = (data.portals ?? []) as Portal[];
  checkEqual(portals.length, 3, 'portals of a 3-replica volume');
  t0 = performance.now();
  const a = await n.brick.connect(data);
  const connectWall = Math.round(performance.now() - t0);
  const res = must(a, 'connect_volume');
  observe('os-brick connect_volume', { ms: a.ms, wallMs: connectWall, commands: a.commands, warnings: a.warnings });
  checkNoWarnings(a, 'connect_volume');
  checkBrickConnects(a, data, portals);
  checkEqual(res.type, 'block', 'connect_volume type');
  const head = headByUuid(data.vol_uuid);
  check(head, `exactly one head device carries ${data.vol_uuid}`);
  checkEqual(res.path, `/dev/${head}`, "os-brick's device is the volume's head");
  return {
    volumeId,
    attachmentId: init.attachmentId,
    data,
    portals,
    device: res.path,
    ms: { initialize, connect: a.ms },
  };
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
  const volumeId = await n.createVolume();
  const at = await step('initialize_connection with os-brick connector, os-brick connect_volume', () =>
    novaAttach(n, volumeId),
  );
  observe('connection_info.data', at.data);
  observe('attach ms', at.ms);
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

const parts: Part<NovaHost>[] = [{ name: 'nova-osbrick-alone', run: osbrickAlone }];

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
      observe('stack stopped', await n.stack.stop());
    });
  },
});
