/**
 * Guest scenario group `agent-auth`: in-band authentication (DH-HMAC-CHAP, issue 20) through the
 * whole stack, on Debian's kernel with its nvme modules rebuilt with CONFIG_NVME_AUTH and
 * CONFIG_NVME_TARGET_AUTH (harness/nvme-auth.ts). `portalis serve` runs with
 * `PORTALIS_INBAND_AUTH=required` and its secrets key from a file, `portalis sim` on nvmet writes
 * the host's pair into configfs with DH group ffdhe2048, and the agent daemon keeps
 * /etc/nvme/config.json and connects. Nothing is configured on the target by hand except where a
 * part says it plays a backend whose secret drifted (through the simulator's LightOS API).
 *
 * The test reads the host's secrets from the file the agent keeps (it is root on the host, as
 * the agent is) to compare them with sysfs and configfs; they are never printed: observations
 * and checks compare them as booleans.
 *
 * - agent-auth-attach: an attach through the service authenticates every path (the kernel's
 *   `qid 0: authenticated` per controller, `auth_generation` per path, sysfs = config.json =
 *   configfs), O_DIRECT I/O verified.
 * - agent-auth-rejected: the backend holds another host secret: every connect is refused, the
 *   agent reports `auth_rejected`, no live controller and no block device meanwhile; the right
 *   secret back at the backend and the agent's retry connects.
 * - agent-auth-bidirectional: the backend presents another controller secret: the host refuses
 *   the target (`controller authentication failed`), `auth_rejected`, nothing half-connected.
 * - agent-auth-rotate: `POST /v1/hosts/{nqn}/secrets/rotate` under O_DIRECT writes: the host
 *   secret moves (generation N+1), then the controller secret (N+2), each controller
 *   re-authenticating in place once per half with no authentication failure; no write fails,
 *   every path on N+2, the rotation reaches `idle`, the old secrets refused.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { type AgentStack, Sampler, simNodeOf, startAgentStack } from './agent.ts';
import { BackgroundWriter, verifyChunks, writeChunks } from './io.ts';
import { check, checkEqual, observe, readSys, runDir, scenarioGroup, sh, step, waitFor, type Part } from './lib.ts';
import { checkOneControllerPerPortal, controllers, ioErrorsSince, kernelLog, nvmeDisks } from './nvme.ts';
import type { AttachmentView } from './rest.ts';

type Portal = [string, number, string];
const DHGROUP = 'ffdhe2048';
const CONFIG_JSON = '/etc/nvme/config.json';
const NVMET_HOSTS = '/sys/kernel/config/nvmet/hosts';

interface SecretStatus {
  generation: number;
  next_generation: number | null;
  step: string;
  waiting_for: string | null;
  last_error: string | null;
}

/** The host's pair as the agent keeps it in config.json (libnvme 1.3's JSON layout). */
interface HostKeys {
  host: string;
  /** dhchap_ctrl_key per trsvcid. */
  ctrl: Record<string, string>;
}

/**
 * The pair the target holds for the host, read from its configfs entry at setup (registered, not
 * yet attached: the entry is there with its keys) and again after a rotation; a part that plays a
 * drifted backend puts it back.
 */
let targetPair: { host: string; ctrl: string } | null = null;

function readTargetPair(s: AgentStack): { host: string; ctrl: string } {
  const dir = `${NVMET_HOSTS}/${s.connector.nqn}`;
  const host = readSys(`${dir}/dhchap_key`);
  const ctrl = readSys(`${dir}/dhchap_ctrl_key`);
  check(host?.startsWith('DHHC-1:') && ctrl?.startsWith('DHHC-1:'), `configfs ${dir} holds the host's pair`);
  return { host: host as string, ctrl: ctrl as string };
}

/**
 * One write of connect options to /dev/nvme-fabrics (what nvme-cli does, Linux
 * drivers/nvme/host/fabrics.c `nvmf_dev_write`): ok with the kernel's answer (`instance=N,…`),
 * or the errno the write failed with.
 */
function fabricsConnect(options: string): { ok: boolean; answer?: string; errno?: string } {
  const fd = openSync('/dev/nvme-fabrics', 'r+');
  try {
    writeSync(fd, options);
    const buf = Buffer.alloc(256);
    return {
      ok: true,
      answer: buf
        .subarray(0, readSync(fd, buf, 0, buf.length, null))
        .toString()
        .trim(),
    };
  } catch (e) {
    return { ok: false, errno: (e as NodeJS.ErrnoException).code ?? 'error' };
  } finally {
    closeSync(fd);
  }
}

/** Where the kernel log stood when the scenarios began (the setup done). */
let scenariosMark = 0;

/** Every secret of the host read from config.json during the run: none may be in a program's log. */
const secretsSeen = new Set<string>();

function hostKeys(s: AgentStack): HostKeys {
  const entries = JSON.parse(readFileSync(CONFIG_JSON, 'utf8')) as {
    hostnqn: string;
    dhchap_key?: string;
    subsystems?: { nqn: string; ports?: { trsvcid: string; dhchap_ctrl_key?: string }[] }[];
  }[];
  const e = entries.find((x) => x.hostnqn === s.connector.nqn);
  check(e?.dhchap_key, `${CONFIG_JSON} has a host key for ${s.connector.nqn}`);
  secretsSeen.add(e.dhchap_key);
  const ctrl: Record<string, string> = {};
  for (const sub of e.subsystems ?? [])
    if (sub.nqn === s.nqn)
      for (const p of sub.ports ?? []) if (p.dhchap_ctrl_key) secretsSeen.add((ctrl[p.trsvcid] = p.dhchap_ctrl_key));
  return { host: e.dhchap_key, ctrl };
}

function secrets(s: AgentStack): Promise<SecretStatus> {
  return s.api.http
    .expect([200], 'GET', `/v1/hosts/${encodeURIComponent(s.connector.nqn)}/secrets`)
    .then((a) => a as SecretStatus);
}

/** `POST …/secrets/rotate?from_generation=`, as an operator calls it: a retry never starts a second rotation. */
function rotateFrom(s: AgentStack, generation: number) {
  return s.api.http.request(
    'POST',
    `/v1/hosts/${encodeURIComponent(s.connector.nqn)}/secrets/rotate?from_generation=${generation}`,
  );
}

/** The host's secret state once `idle` on `generation`, as `read` gives it (by default `GET …/secrets`). */
function idleOn(s: AgentStack, generation: number, read: () => Promise<SecretStatus> = () => secrets(s)) {
  return waitFor(
    `secrets idle on generation ${generation}`,
    async () => {
      const st = await read();
      return st.step === 'idle' && st.generation === generation ? st : undefined;
    },
    120_000,
  );
}

/** Kernel log lines after `mark`, without the timestamp. */
async function logSince(mark: number): Promise<string[]> {
  return (await kernelLog()).slice(mark).map((l) => l.replace(/^\[\s*[\d.]+\]\s*/, ''));
}

/** Controllers the kernel says authenticated their admin queue (6.1 host/auth.c, dev_info on the controller). */
function authenticated(log: string[]): Set<string> {
  return new Set(log.flatMap((l) => /^nvme (nvme\d+): qid 0: authenticated/.exec(l)?.[1] ?? []));
}

/** A DHHC-1 secret for the host from nvme-cli (32 bytes, SHA-256 transformed: what a drifted backend would hold). */
async function otherKey(s: AgentStack): Promise<string> {
  return (await sh('nvme', ['gen-dhchap-key', '--key-length=32', '--hmac=1', `--nqn=${s.connector.nqn}`])).trim();
}

/** Sets the pair the target demands through the simulator's LightOS API (as the service's adapter does). */
async function setBackendPair(s: AgentStack, hostSecret: string, targetSecret: string): Promise<void> {
  const r = await s.sim.request('PUT', `/api/v2/trustedHosts/${encodeURIComponent(s.connector.nqn)}/secrets`, {
    hostSecret,
    targetSecret,
  });
  checkEqual(r.status, 200, 'PUT trustedHosts/{nqn}/secrets');
}

async function attachNew(s: AgentStack) {
  const volumeId = randomUUID();
  await s.createVolume(volumeId, 1);
  const { data, attachmentId } = await s.attach(volumeId);
  const portals = (data.portals ?? []) as Portal[];
  checkEqual(portals.length, 3, 'portals of a 3-replica volume');
  return { volumeId, data, attachmentId, portals };
}

/** The attachment once its three paths are live on `generation`. */
function allLiveOn(s: AgentStack, attachmentId: string, generation: number, timeoutMs: number) {
  return s.waitAttachment(
    attachmentId,
    `three live paths on generation ${generation}`,
    (x) =>
      x.agent?.paths.length === 3 && x.agent.paths.every((p) => p.state === 'live' && p.auth_generation === generation)
        ? x
        : undefined,
    timeoutMs,
  );
}

/** Every reported path is live on `generation`, and its controller holds config.json's secrets. */
function checkPathsOn(s: AgentStack, a: AttachmentView, generation: number): void {
  const keys = hostKeys(s);
  for (const p of a.agent!.paths) {
    checkEqual(p.auth_generation, generation, `${p.controller} (port ${p.port}) auth_generation`);
    const dir = `/sys/class/nvme/${p.controller}`;
    checkEqual(readSys(`${dir}/dhchap_secret`) === keys.host, true, `${p.controller} dhchap_secret = config.json's`);
    checkEqual(
      readSys(`${dir}/dhchap_ctrl_secret`) === keys.ctrl[String(p.port)],
      true,
      `${p.controller} dhchap_ctrl_secret = config.json's for port ${p.port}`,
    );
  }
}

// ------------------------------------------------------------------------------ 1. attach

async function authAttach(s: AgentStack): Promise<void> {
  const st = await secrets(s);
  checkEqual(st.step, 'idle', 'the secrets are in force');
  const mark = (await kernelLog()).length;
  const t0 = performance.now();
  const { volumeId, attachmentId, portals } = await attachNew(s);
  const a = await step('initialize_connection; the agent connects every portal', () =>
    s.waitConnected(attachmentId, 3),
  );
  const connectMs = Math.round(performance.now() - t0);
  await step('every path authenticated: kernel log, auth_generation, sysfs = config.json = configfs', async () => {
    checkOneControllerPerPortal(s.nqn, portals);
    const log = await logSince(mark);
    observe('kernel log of the attach', log);
    const ctrls = a.agent!.paths.map((p) => p.controller!).sort();
    checkEqual(
      ctrls.filter((c) => authenticated(log).has(c)),
      ctrls,
      'controllers that logged "qid 0: authenticated"',
    );
    check(!log.some((l) => /authentication failed/.test(l)), 'no authentication failure');
    checkPathsOn(s, a, st.generation);
    const mode = statSync(CONFIG_JSON).mode & 0o777;
    checkEqual(mode.toString(8), '600', `${CONFIG_JSON} mode`);
    const dir = `${NVMET_HOSTS}/${s.connector.nqn}`;
    checkEqual(readSys(`${dir}/dhchap_key`) === hostKeys(s).host, true, "configfs dhchap_key = the host's");
    checkEqual(readSys(`${dir}/dhchap_dhgroup`), DHGROUP, 'configfs dhchap_dhgroup');
    checkEqual(readSys(`${dir}/dhchap_hash`), 'hmac(sha256)', 'configfs dhchap_hash');
    observe('authenticated attach', { connectMs, generation: st.generation, paths: a.agent!.paths });
  });
  await step('O_DIRECT write and read back 8 MiB', async () => {
    const dev = a.agent!.device_path!;
    const writeMs = await writeChunks(dev, 0, 8, 'auth');
    const { problems, readMs } = await verifyChunks(dev, 0, 'auth', new Array(8).fill(1));
    checkEqual(problems, [], 'data read back');
    observe('O_DIRECT 8 MiB', { writeMs, readMs });
  });
  await s.detach(volumeId, attachmentId);
  await s.deleteVolume(volumeId);
}

// ------------------------------------------------------------------------------ 2, 4. refused

/**
 * The backend holds `pair` instead of the host's: the attach is refused on every portal, the agent
 * says `auth_rejected` (with the kernel's reason), and while it retries no controller goes live and
 * no block device appears. The right pair back at the backend: the agent's retry connects.
 */
async function refusedThenRight(
  s: AgentStack,
  what: string,
  drift: (right: { host: string; ctrl: string }) => Promise<[string, string]>,
) {
  const right = targetPair;
  check(right, 'the target pair was read at setup');
  checkEqual(right.host === hostKeys(s).host, true, "the target's host secret is the host's (config.json)");
  const [host, target] = await drift(right);
  await setBackendPair(s, host, target);
  const mark = (await kernelLog()).length;
  const { volumeId, attachmentId, portals } = await attachNew(s);
  const sampler = new Sampler(
    () => ({
      live: controllers(s.nqn)
        .filter((c) => c.state === 'live')
        .map((c) => c.name),
      disks: nvmeDisks(),
    }),
    100,
  );
  let rejected: AttachmentView;
  try {
    rejected = await step(`${what}: the agent reports auth_rejected`, () =>
      s.waitAttachment(
        attachmentId,
        'error auth_rejected',
        (x) => (x.agent?.error?.code === 'auth_rejected' ? x : undefined),
        60_000,
      ),
    );
    // One more refused pass of the agent's (re-check every 2 s) inside the sampled window.
    await s.waitAttachment(
      attachmentId,
      'a later report, still auth_rejected',
      (x) =>
        x.agent?.reported_at !== rejected.agent?.reported_at && x.agent?.error?.code === 'auth_rejected'
          ? x
          : undefined,
      30_000,
    );
  } finally {
    await sampler.stop();
  }
  const log = await logSince(mark);
  observe(`${what}: refused`, { report: rejected.agent, kernel: log.slice(0, 40) });
  checkEqual(
    sampler.samples.filter((x) => x.value.live.length || x.value.disks.length),
    [],
    `${what}: samples with a live controller or an NVMe block device`,
  );
  check(sampler.samples.length > 0, 'the refusal window was sampled');
  check(rejected.agent!.state !== 'connected', `${what}: not reported connected`);
  await step(`${what}: the right pair back at the backend; the agent's retry connects`, async () => {
    await setBackendPair(s, right.host, right.ctrl);
    const a = await s.waitConnected(attachmentId, 3, 60_000);
    checkOneControllerPerPortal(s.nqn, portals);
    checkPathsOn(s, a, (await secrets(s)).generation);
  });
  await s.detach(volumeId, attachmentId);
  await s.deleteVolume(volumeId);
  return log;
}

async function authRejected(s: AgentStack): Promise<void> {
  const log = await refusedThenRight(s, 'wrong host secret', async (right) => [await otherKey(s), right.ctrl]);
  check(
    log.some((l) => /host response mismatch/.test(l)) && log.some((l) => /qid 0: authentication failed/.test(l)),
    'nvmet logs "host response mismatch", the host "qid 0: authentication failed"',
  );
}

async function authBidirectional(s: AgentStack): Promise<void> {
  const log = await refusedThenRight(s, 'wrong controller secret', async (right) => [right.host, await otherKey(s)]);
  check(
    log.some((l) => /qid 0: controller authentication failed/.test(l)),
    'the host logs "qid 0: controller authentication failed"',
  );
}

// ------------------------------------------------------------------------------ 3. rotation

async function authRotate(s: AgentStack): Promise<void> {
  const before = await secrets(s);
  checkEqual(before.step, 'idle', 'nothing under way');
  const attachMark = (await kernelLog()).length;
  const { volumeId, attachmentId, portals } = await attachNew(s);
  const a = await s.waitConnected(attachmentId, 3);
  // Attached again after earlier parts revoked the host (its configfs entry removed): the target
  // must still demand the secret (sysfs shows a secret even when nothing was asked, see nvmet-auth).
  const attachLog = await logSince(attachMark);
  const first = a.agent!.paths.map((p) => p.controller!).sort();
  checkEqual(
    first.filter((c) => authenticated(attachLog).has(c)),
    first,
    'controllers that authenticated at the attach',
  );
  const old = hostKeys(s);
  const oldPort = portals[0]![1];
  const writer = new BackgroundWriter(a.agent!.device_path!, 0, 16, 'rotate').start();
  const mark = (await kernelLog()).length;
  const ioMark = mark;
  let rotated: AttachmentView;
  const t0 = performance.now();
  let firstAnswer: unknown;
  try {
    await writer.waitForWrites(8, 'before the rotation');
    const r = await rotateFrom(s, before.generation);
    firstAnswer = { status: r.status, body: r.body };
    check([200, 202].includes(r.status), `rotate answered ${r.status}: ${JSON.stringify(r.body)}`);
    // Two generations: N+1 the new host secret, N+2 the new controller secret (one sysfs write,
    // so one re-authentication with a matching pair, per controller and half).
    const target = before.generation + 2;
    const done = await step('the rotation reaches idle two generations on (host secret, then controller secret)', () =>
      idleOn(s, target),
    );
    observe('rotation', { firstAnswer, ms: Math.round(performance.now() - t0), status: done });
    rotated = await s.waitAttachment(
      attachmentId,
      'every path reported on the new generation',
      (x) =>
        x.agent?.paths.length === 3 && x.agent.paths.every((p) => p.state === 'live' && p.auth_generation === target)
          ? x
          : undefined,
      30_000,
    );
    await writer.waitForWrites(8, 'after the rotation');
  } finally {
    await writer.stop();
  }
  const log = await logSince(mark);
  observe('kernel log of the rotation', log);
  observe('writes', { written: writer.written, slowestMs: writer.maxWriteMs });
  checkEqual(writer.failures, [], 'failed writes');
  checkEqual((await writer.verify()).problems, [], 'blocks that do not verify');
  checkEqual(await ioErrorsSince(ioMark), [], 'kernel I/O errors');
  check(!log.some((l) => /authentication failed/.test(l)), 'no authentication failure during the rotation');
  const ctrls = rotated.agent!.paths.map((p) => p.controller!).sort();
  checkEqual(
    ctrls.filter((c) => authenticated(log).has(c)),
    ctrls,
    'controllers that re-authenticated ("qid 0: authenticated")',
  );
  checkPathsOn(s, rotated, before.generation + 2);
  checkEqual(hostKeys(s).host === old.host, false, 'config.json holds a new host secret');
  checkEqual(
    hostKeys(s).ctrl[String(oldPort)] === old.ctrl[String(oldPort)],
    false,
    'config.json holds a new controller secret',
  );
  checkOneControllerPerPortal(s.nqn, portals);
  targetPair = readTargetPair(s);
  checkEqual(targetPair.host === hostKeys(s).host, true, "configfs dhchap_key = config.json's new host key");

  await step('a connect with the old secret is refused afterwards; nothing added', async () => {
    const n = controllers(s.nqn).length;
    const m = (await kernelLog()).length;
    // Straight to /dev/nvme-fabrics, as nvme-cli does, with `duplicate_connect` (a new association
    // beside the live one): nvme-cli 2.3 answered "already connected" even with -D here, from its
    // own lookup of the live controllers. The throwaway test secrets stay in this process.
    const r = fabricsConnect(
      [
        `nqn=${s.nqn}`,
        'transport=tcp',
        'traddr=127.0.0.1',
        `trsvcid=${oldPort}`,
        `hostnqn=${s.connector.nqn}`,
        `hostid=${s.connector.nvme_hostid}`,
        `dhchap_secret=${old.host}`,
        `dhchap_ctrl_secret=${old.ctrl[String(oldPort)]}`,
        'duplicate_connect',
        'ctrl_loss_tmo=0',
      ].join(','),
    );
    const k = await logSince(m);
    observe('connect with the old secret', { ...r, kernel: k });
    check(!r.ok, 'a connect with the old secret fails');
    check(
      k.some((l) => /host response mismatch/.test(l)),
      'nvmet logs "host response mismatch"',
    );
    checkEqual(controllers(s.nqn).length, n, 'controllers after the refused connect');
  });
  await s.detach(volumeId, attachmentId);
  await s.deleteVolume(volumeId);
}

// ------------------------------------------------------------------------------ 5. a path down through a rotation

/**
 * A node is down while the host's secrets rotate: its controller keeps reconnecting with the
 * secret it held, which the target (one pair per host) no longer takes once the node is back.
 * The agent's recheck replaces it (disconnect, a new connect from config.json) since the volume
 * has other usable paths; writes never stop.
 */
async function authRotatePathDown(s: AgentStack): Promise<void> {
  const before = await secrets(s);
  checkEqual(before.step, 'idle', 'nothing under way');
  const { volumeId, attachmentId, portals } = await attachNew(s);
  const a = await s.waitConnected(attachmentId, 3);
  // A non-optimized replica's node: the writes keep their optimized path throughout.
  const downPortal = portals.find((p) => a.agent!.paths.some((x) => x.port === p[1] && x.ana_state !== 'optimized'));
  check(downPortal, `a non-optimized path: ${JSON.stringify(a.agent!.paths)}`);
  const node = await simNodeOf(s, downPortal);
  const oldCtrl = a.agent!.paths.find((p) => p.port === downPortal[1])!.controller!;
  const writer = new BackgroundWriter(a.agent!.device_path!, 0, 16, 'rotate-down').start();
  const mark = (await kernelLog()).length;
  try {
    await writer.waitForWrites(4, 'before the node goes');
    await step('the node goes down: its path is not live', async () => {
      await s.sim.node(node.uuid, false);
      await s.waitAttachment(attachmentId, 'the path of the down node not live', (x) =>
        x.agent?.paths.some((p) => p.port === downPortal[1] && p.state !== 'live') ? x : undefined,
      );
    });
    const r = await rotateFrom(s, before.generation);
    check([200, 202].includes(r.status), `rotate answered ${r.status}: ${JSON.stringify(r.body)}`);
    await step('the rotation reaches idle without the down path', () => idleOn(s, before.generation + 2));
    const t0 = performance.now();
    await s.sim.node(node.uuid, true);
    const back = await step(
      'the node is back: the refused controller is replaced, every path live on the new pair',
      () => allLiveOn(s, attachmentId, before.generation + 2, 90_000),
    );
    observe('back on the new pair after ms', Math.round(performance.now() - t0));
    await writer.waitForWrites(4, 'after the path came back');
    const log = await logSince(mark);
    observe('kernel log', log);
    checkPathsOn(s, back, before.generation + 2);
    checkOneControllerPerPortal(s.nqn, portals);
    observe('controllers', {
      before: oldCtrl,
      after: back.agent!.paths.find((p) => p.port === downPortal[1])?.controller,
    });
  } finally {
    await writer.stop();
  }
  checkEqual(writer.failures, [], 'failed writes');
  checkEqual((await writer.verify()).problems, [], 'blocks that do not verify');
  await s.detach(volumeId, attachmentId);
  await s.deleteVolume(volumeId);
}

// ------------------------------------------------------------------------------ 6. every path down: no rotation

/**
 * Every node is down (the host cut off from its storage) when the host's secrets are rotated: the
 * service keeps the backend on the pair the controllers hold (`host_paths_down`), since once
 * refused they could come back by no other means on 6.1 (a secret written to a controller that is
 * not live oopsed this kernel; a device's last path is never replaced). Back, the paths reconnect
 * on the old pair, the rotation goes on and moves them in place.
 */
async function authRotateAllDown(s: AgentStack): Promise<void> {
  const before = await secrets(s);
  checkEqual(before.step, 'idle', 'nothing under way');
  const { volumeId, attachmentId, portals } = await attachNew(s);
  const a = await s.waitConnected(attachmentId, 3);
  const dev = a.agent!.device_path!;
  await writeChunks(dev, 0, 4, 'all-down');
  const nodes = await Promise.all(portals.map(async (p) => (await simNodeOf(s, p)).uuid));
  const pairBefore = readTargetPair(s);
  await step('every node goes down: no path is live', async () => {
    for (const n of nodes) await s.sim.node(n, false);
    await s.waitAttachment(attachmentId, 'no live path', (x) =>
      x.agent?.paths.length && x.agent.paths.every((p) => p.state !== 'live') ? x : undefined,
    );
  });
  await step('the rotation waits: host_paths_down, the backend keeps the pair the paths hold', async () => {
    const r = await rotateFrom(s, before.generation);
    observe('rotate while cut off', { status: r.status, body: r.body });
    checkEqual(r.status, 202, 'rotate answers 202');
    const b = r.body as SecretStatus & { waiting_for: string; last_error: string | null };
    checkEqual([b.step, b.waiting_for], ['staged', 'agent'], 'step and waiting_for');
    check(/host_paths_down/.test(b.last_error ?? ''), `last_error names host_paths_down: ${b.last_error}`);
    const now = readTargetPair(s);
    checkEqual(now.host === pairBefore.host && now.ctrl === pairBefore.ctrl, true, 'configfs holds the same pair');
  });
  const t0 = performance.now();
  for (const n of nodes) await s.sim.node(n, true);
  await step('the nodes are back: the paths reconnect on the pair they hold', () => s.waitConnected(attachmentId, 3));
  const back = await step(
    'the rotation goes on (repeated as an operator would) and moves every path in place',
    async () => {
      await idleOn(s, before.generation + 2, async () => (await rotateFrom(s, before.generation)).body as SecretStatus);
      return allLiveOn(s, attachmentId, before.generation + 2, 30_000);
    },
  );
  observe('nodes back to every path on the new pair, ms', Math.round(performance.now() - t0));
  checkPathsOn(s, back, before.generation + 2);
  checkOneControllerPerPortal(s.nqn, portals);
  const { problems } = await verifyChunks(dev, 0, 'all-down', new Array(4).fill(1));
  checkEqual(problems, [], 'blocks written before the nodes went down');
  await writeChunks(dev, 4, 4, 'all-down-after');
  checkEqual((await verifyChunks(dev, 4, 'all-down-after', new Array(4).fill(1))).problems, [], 'blocks written after');
  await s.detach(volumeId, attachmentId);
  await s.deleteVolume(volumeId);
}

const parts: Part<AgentStack>[] = [
  { name: 'agent-auth-attach', run: authAttach },
  { name: 'agent-auth-rejected', run: authRejected },
  { name: 'agent-auth-bidirectional', run: authBidirectional },
  { name: 'agent-auth-rotate', run: authRotate },
  { name: 'agent-auth-rotate-path-down', run: authRotatePathDown },
  { name: 'agent-auth-rotate-all-down', run: authRotateAllDown },
];

await scenarioGroup('agent-auth', {
  setup: async () => {
    // The secrets key in a file (mode 0600), never on a command line or in the environment's value.
    const keyFile = '/tmp/portalis-secrets.key';
    writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    // Debug level: the logs searched for secrets at the teardown hold everything the programs say.
    const s = await startAgentStack(
      { PORTALIS_LOG_LEVEL: 'debug' },
      {
        serviceEnv: {
          PORTALIS_INBAND_AUTH: 'required',
          PORTALIS_SECRETS_KEY_FILE: keyFile,
          PORTALIS_LOG_LEVEL: 'debug',
        },
        simEnv: { PORTALIS_SIM_NVMET_DHGROUP: DHGROUP },
      },
    );
    // A setup that fails after the stack started must stop it, or the guest never exits.
    try {
      const st = await step('the host has its secrets (generated at POST /v1/hosts)', () =>
        waitFor(
          'secrets in force',
          async () => {
            const x = await secrets(s);
            return x.step === 'idle' && x.generation >= 1 ? x : undefined;
          },
          60_000,
        ),
      );
      observe('host secrets', st);
      await waitFor(
        'the agent wrote config.json',
        () => {
          try {
            return hostKeys(s).host ? true : undefined;
          } catch {
            return undefined;
          }
        },
        60_000,
      );
      targetPair = readTargetPair(s);
      checkEqual(targetPair.host === hostKeys(s).host, true, "configfs dhchap_key = config.json's host key");
      scenariosMark = (await kernelLog()).length;
    } catch (err) {
      await s.stop().catch(() => undefined);
      throw err;
    }
    return s;
  },
  parts,
  between: (s) => s.cleanUp(),
  diagnose: (s) => {
    s?.diagnose();
    void kernelLog().then((l) => console.log(l.slice(-40).join('\n')));
  },
  teardown: async (s) => {
    await step('stop the agent, portalis serve and portalis sim (SIGTERM)', () => s.stop());
    await step('no secret in the logs of portalis serve, portalis sim or the agent', async () => {
      const logs = readdirSync(runDir).filter((f) => f.endsWith('.log'));
      check(logs.length >= 3, `the programs' logs: ${logs.join(', ')}`);
      for (const f of logs) {
        const text = readFileSync(path.join(runDir, f), 'utf8');
        check(!text.includes('DHHC-1'), `${f} holds a DHHC-1 secret`);
        for (const secret of secretsSeen)
          check(!text.includes(secret.split(':')[2]!), `${f} holds a secret's key text`);
      }
      observe('logs searched', { files: logs, secrets: secretsSeen.size });
    });
    await step('the kernel never oopsed (a secret written to a controller that is not live did, on 6.1)', async () => {
      // From the end of the setup: at boot, loading the drbg module logs WARNINGs of crypto
      // self-tests for its CTR variants (crypto/testmgr.c, rc=-22), which nothing here uses.
      const bad = (await kernelLog()).slice(scenariosMark).filter((l) => /\bBUG:|Oops|WARNING: CPU/.test(l));
      checkEqual(bad, [], 'kernel BUG, Oops or WARNING lines');
    });
  },
});
