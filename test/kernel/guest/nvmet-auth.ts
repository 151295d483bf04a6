/**
 * Guest group `nvmet-auth`: NVMe in-band authentication (DH-HMAC-CHAP) between the kernel's
 * nvmet target and its NVMe/TCP host, on Debian's kernel with the nvme modules rebuilt with
 * CONFIG_NVME_AUTH and CONFIG_NVME_TARGET_AUTH (harness/nvme-auth.ts). Driven by hand through
 * configfs (`hosts/<hostnqn>/dhchap_*`) and Debian 12's nvme-cli 2.3; keys from
 * `nvme gen-dhchap-key`; DH group ffdhe2048 from dh_ffdhe.ko, since Debian's kernel image lacks
 * the RFC 7919 groups (docs/KERNEL.md §6). Facts seen go to observations.json.
 *
 * Secrets appear on nvme-cli's command line here on purpose: these are throwaway test keys and
 * the scenario proves what nvme-cli does with its options; `auth-config-file` proves the way
 * that keeps them off the command line.
 */
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { NvmetDataPlane } from '../../../src/sim/nvmet/nvmet-data-plane.ts';
import type { SimNodeEndpoint } from '../../../src/sim/data-plane.ts';
import { MiB } from '../../../src/shared/units.ts';
import { BackgroundWriter } from './io.ts';
import { check, checkEqual, list, observe, readSys, scenarioGroup, sh, shAny, step, waitFor } from './lib.ts';
import {
  type ConnectOptions,
  controllers,
  directIoRoundTrip,
  HOST_ID,
  HOST_NQN,
  headByUuid,
  ioErrorsSince,
  kernelLog,
  nvmeConnect,
} from './nvme.ts';

const NQN = 'nqn.2016-01.com.lightbitslabs:uuid:7a4e2c1d-3b5f-4e6a-9c8d-2e1f0a9b8c7d';
const VOL = '2b3c4d5e-6f70-4a81-9b92-a3b4c5d6e7f8';
const NODES: SimNodeEndpoint[] = [0, 1].map((index) => ({
  nodeId: `node-${index + 1}`,
  index,
  address: '127.0.0.1',
  port: 4420 + index,
}));
const HOST_DIR = `/sys/kernel/config/nvmet/hosts/${HOST_NQN}`;
/** A second allowed host whose target entry has no key: the target does not ask it to authenticate. */
const OPEN_HOST = {
  hostNqn: 'nqn.2014-08.org.nvmexpress:uuid:5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b',
  hostId: '5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b',
};

interface Keys {
  host: string;
  ctrl: string;
}

interface Ctx {
  plane: NvmetDataPlane;
  keys: Keys;
}

/** A DHHC-1 secret from nvme-cli 2.3: 32 bytes, transformed with SHA-256 for `HOST_NQN` (hmac 1). */
async function genKey(): Promise<string> {
  const key = (await sh('nvme', ['gen-dhchap-key', '--key-length=32', '--hmac=1', `--nqn=${HOST_NQN}`])).trim();
  check(/^DHHC-1:01:[A-Za-z0-9+/]+=*:$/.test(key), `gen-dhchap-key printed a DHHC-1 key: ${key.slice(0, 10)}…`);
  return key;
}

/** What the target demands of HOST_NQN (configfs; nvmet reads it at the next (re-)authentication). */
function setTargetKeys(keys: Partial<Keys>): void {
  if (keys.host !== undefined) writeFileSync(`${HOST_DIR}/dhchap_key`, keys.host);
  if (keys.ctrl !== undefined) writeFileSync(`${HOST_DIR}/dhchap_ctrl_key`, keys.ctrl);
}

/** The DH group nvmet asks HOST_NQN for (6.1 negotiates the one configured here). */
function setDhGroup(group: string): void {
  writeFileSync(`${HOST_DIR}/dhchap_dhgroup`, group);
  checkEqual(readSys(`${HOST_DIR}/dhchap_dhgroup`), group, 'dhchap_dhgroup');
}

/** `nvme connect` like guest/nvme.ts's, plus the secrets and an explicit config file (or `none`). */
function connect(
  o: Omit<ConnectOptions, 'nqn' | 'address'> & { secret?: string; ctrlSecret?: string; config?: string },
) {
  return nvmeConnect({
    ...o,
    nqn: NQN,
    address: '127.0.0.1',
    extra: [
      `--config=${o.config ?? 'none'}`,
      ...(o.secret ? [`--dhchap-secret=${o.secret}`] : []),
      ...(o.ctrlSecret ? [`--dhchap-ctrl-secret=${o.ctrlSecret}`] : []),
    ],
  });
}

/** Kernel log lines after `mark`, without the timestamp. */
async function logSince(mark: number): Promise<string[]> {
  return (await kernelLog()).slice(mark).map((l) => l.replace(/^\[\s*[\d.]+\]\s*/, ''));
}

/** Controller folder attributes that say how a controller authenticated (6.1: only the secrets). */
function authView(name: string) {
  const dir = `/sys/class/nvme/${name}`;
  return {
    state: readSys(`${dir}/state`),
    cntlid: readSys(`${dir}/cntlid`),
    dhchap_secret: readSys(`${dir}/dhchap_secret`),
    dhchap_ctrl_secret: readSys(`${dir}/dhchap_ctrl_secret`),
  };
}

/** A refused connect: nvme-cli's exit and message, the kernel's lines, nothing left behind. */
async function expectRefused(what: string, attempt: () => ReturnType<typeof connect>) {
  const mark = (await kernelLog()).length;
  const t0 = performance.now();
  const r = await attempt();
  const seen = {
    code: r.code,
    stdout: r.stdout.trim(),
    stderr: r.stderr.trim(),
    ms: Math.round(performance.now() - t0),
    kernel: await logSince(mark),
  };
  observe(what, seen);
  check(r.code !== 0, `${what}: nvme connect fails`);
  checkEqual(controllers(NQN), [], `${what}: controllers left`);
  checkEqual(
    list('/sys/block').filter((d) => d.startsWith('nvme')),
    [],
    `${what}: NVMe block devices left`,
  );
  return seen;
}

async function disconnectAll(): Promise<void> {
  if (controllers(NQN).length) await sh('nvme', ['disconnect', '-n', NQN]);
  await waitFor('no controller of the subsystem', () => (controllers(NQN).length === 0 ? true : undefined));
}

/**
 * Dynamic debug for exactly one message of nvmet: `ctrl <cntlid> qid <q> host authenticated`
 * (a pr_debug in target/fabrics-cmd-auth.c), the only place 6.1 says that a re-authentication
 * succeeded; the host logs only its failures. The message carries no key material.
 */
function enableTargetAuthLog(): void {
  writeFileSync('/sys/kernel/debug/dynamic_debug/control', 'module nvmet format "host authenticated" +p\n');
}

async function connectBoth(keys: Keys): Promise<string[]> {
  for (const n of NODES) {
    const r = await connect({ port: n.port, secret: keys.host, ctrlSecret: keys.ctrl });
    checkEqual(r.code, 0, `authenticated connect to ${n.port}: ${r.stderr.trim()}`);
  }
  const names = controllers(NQN).map((c) => c.name);
  checkEqual(names.length, NODES.length, 'controllers');
  return names;
}

/** The start of a rotation: both portals connected with `keys`, O_DIRECT writes running on the head. */
async function connectAndWrite(keys: Keys, tag: string) {
  const names = await connectBoth(keys);
  const head = await waitFor('the head device', () => headByUuid(VOL));
  const ioMark = (await kernelLog()).length;
  return { names, ioMark, writer: new BackgroundWriter(`/dev/${head}`, 0, 8, tag).start() };
}

await scenarioGroup<Ctx>('nvmet-auth', {
  setup: async () => {
    observe('kernel', readSys('/proc/sys/kernel/osrelease'));
    observe('nvme version', (await sh('nvme', ['version'])).trim());
    observe('modules', {
      nvme_core: readSys('/sys/module/nvme_core/taint'),
      nvme_common: list('/sys/module').includes('nvme_common'),
    });
    await sh('mount', ['-t', 'debugfs', 'debugfs', '/sys/kernel/debug']);
    enableTargetAuthLog();
    const plane = new NvmetDataPlane({ dataDir: '/tmp/portalis-nvmet' });
    await plane.start(NQN, NODES);
    await plane.setAllowedHosts([HOST_NQN, OPEN_HOST.hostNqn]);
    await plane.addNamespace({
      volumeUuid: VOL,
      nsid: 1,
      sizeBytes: 64 * MiB,
      ana: { 'node-1': 'optimized', 'node-2': 'non-optimized' },
    });
    observe('configfs host attributes', list(HOST_DIR));
    check(list(HOST_DIR).includes('dhchap_key'), 'nvmet has hosts/<nqn>/dhchap_key (CONFIG_NVME_TARGET_AUTH)');
    const keys = { host: await genKey(), ctrl: await genKey() };
    setTargetKeys(keys);
    observe('configfs host after setting keys', {
      dhchap_hash: readSys(`${HOST_DIR}/dhchap_hash`),
      dhchap_dhgroup: readSys(`${HOST_DIR}/dhchap_dhgroup`),
      key_reads_back: readSys(`${HOST_DIR}/dhchap_key`) === keys.host,
    });
    // The FFDHE groups come from harness/ffdhe (dh_ffdhe.ko, loaded by the harness); nvmet
    // refuses a group whose kpp "ffdhe2048(dh)" the crypto API cannot make (EINVAL).
    setDhGroup('ffdhe2048');
    observe('/proc/crypto ffdhe', (readSys('/proc/crypto') ?? '').match(/ffdhe\d+\(dh\)/g));
    return { plane, keys };
  },
  parts: [
    {
      name: 'auth-connect',
      run: async ({ keys }) => {
        const mark = (await kernelLog()).length;
        const names = await step('connect both portals with host and controller secrets', () => connectBoth(keys));
        const log = await logSince(mark);
        observe('kernel log of an authenticated connect', log);
        for (const n of names) {
          check(
            log.some((l) => l === `nvme ${n}: qid 0: authenticated with hash hmac(sha256) dhgroup ffdhe2048`) &&
              log.some((l) => l === `nvme ${n}: qid 0: controller authenticated`) &&
              log.some((l) => l === `nvme ${n}: qid 0: authenticated`),
            `${n}: "authenticated with hash hmac(sha256) dhgroup ffdhe2048", "controller authenticated", "authenticated"`,
          );
          const v = authView(n);
          checkEqual(v.dhchap_secret, keys.host, `${n} dhchap_secret`);
          checkEqual(v.dhchap_ctrl_secret, keys.ctrl, `${n} dhchap_ctrl_secret`);
        }
        // 6.1 creates both attributes 0644 (S_IRUGO | S_IWUSR, host/core.c): any local user reads the secrets.
        observe(
          'sysfs modes',
          Object.fromEntries(
            ['dhchap_secret', 'dhchap_ctrl_secret'].map((a) => [
              a,
              (statSync(`/sys/class/nvme/${names[0]}/${a}`).mode & 0o777).toString(8),
            ]),
          ),
        );
        observe('controller attributes', list(`/sys/class/nvme/${names[0]}`));
        const head = await waitFor('the head device', () => headByUuid(VOL));
        observe('O_DIRECT 16 MiB', await directIoRoundTrip(`/dev/${head}`, 16, 'auth'));
        await disconnectAll();
      },
    },
    {
      name: 'auth-dhgroups',
      run: async ({ keys }) => {
        const seen: Record<string, number> = {};
        try {
          for (const group of ['null', 'ffdhe3072', 'ffdhe8192']) {
            setDhGroup(group);
            const mark = (await kernelLog()).length;
            const t0 = performance.now();
            const r = await connect({ port: 4420, secret: keys.host, ctrlSecret: keys.ctrl });
            seen[group] = Math.round(performance.now() - t0);
            checkEqual(r.code, 0, `connect with DH group ${group}: ${r.stderr.trim()}`);
            const [c] = controllers(NQN);
            check(
              (await logSince(mark)).includes(
                `nvme ${c.name}: qid 0: authenticated with hash hmac(sha256) dhgroup ${group}`,
              ),
              `${c.name} authenticated with ${group}`,
            );
            await disconnectAll();
          }
        } finally {
          setDhGroup('ffdhe2048');
        }
        observe('nvme connect ms by DH group (emulated CPU)', seen);
      },
    },
    {
      name: 'auth-not-required',
      run: async ({ keys }) => {
        // 6.1 authenticates only when the target's connect answer asks for it (fabrics.c
        // nvmf_connect_admin_queue): a secret given to a target that does not ask is kept in
        // sysfs but never used, so "dhchap_secret is not none" alone does not mean authenticated.
        const mark = (await kernelLog()).length;
        const r = await connect({ port: 4420, ...OPEN_HOST, secret: keys.host });
        checkEqual(r.code, 0, `connect with a secret to a target that does not ask: ${r.stderr.trim()}`);
        const [c] = controllers(NQN);
        const log = await logSince(mark);
        observe('secret given, target does not ask', {
          kernel: log,
          secretShown: authView(c.name).dhchap_secret === keys.host,
        });
        check(!log.some((l) => /authenticated/.test(l)), 'no authentication happened');
        checkEqual(authView(c.name).dhchap_secret, keys.host, 'sysfs dhchap_secret shows the unused secret');
        // Asked to re-authenticate, the host tries; nvmet has no key for it ("no host key") and
        // ends the association ("fatal error"): the host's failure is soft, the target's is not.
        // The host then reconnects, and since this target does not ask, comes back live.
        const again = (await kernelLog()).length;
        writeFileSync(`/sys/class/nvme/${c.name}/dhchap_secret`, keys.host);
        await waitFor('the failed re-authentication', async () =>
          (await logSince(again)).some((l) => /starting error recovery/.test(l)) ? true : undefined,
        );
        await waitFor(
          `${c.name} live again`,
          () => (authView(c.name).state === 'live' ? true : undefined),
          30_000,
          () => authView(c.name).state,
        );
        const reauth = await logSince(again);
        observe('re-authentication the target did not ask for', reauth);
        for (const want of [/qid 0 no host key/, /ctrl \d+ fatal error occurred/, /qid 0: authentication failed/]) {
          check(
            reauth.some((l) => want.test(l)),
            `kernel log has ${want}`,
          );
        }
        await disconnectAll();
      },
    },
    {
      name: 'auth-refused',
      run: async ({ keys }) => {
        // 6.1: the connect answer asks for authentication, the host has no key ("qid 0: no key",
        // "authentication setup failed") and fails the admin queue with NVME_SC_AUTH_REQUIRED
        // (0x191 = 401, drivers/nvme/host/fabrics.c nvmf_connect_admin_queue); nvme-cli sees EIO.
        const none = await expectRefused('no secret', () => connect({ port: 4420 }));
        check(
          none.kernel.some((l) => /qid 0: no key/.test(l)) && none.kernel.some((l) => /ret=401/.test(l)),
          'the kernel says "qid 0: no key" and fails the queue with 401',
        );
        const wrong = await genKey();
        const bad = await expectRefused('wrong host secret', () => connect({ port: 4420, secret: wrong }));
        check(
          bad.kernel.some((l) => /host response mismatch/.test(l)) &&
            bad.kernel.some((l) => /qid 0: authentication failed/.test(l)),
          'nvmet logs the host response mismatch, the host "authentication failed"',
        );
        // The right secret still works after the refusals (nothing stuck on the target).
        await connectBoth(keys);
        await disconnectAll();
      },
    },
    {
      name: 'auth-bidirectional',
      run: async ({ keys }) => {
        const impostor = await genKey();
        setTargetKeys({ ctrl: impostor });
        try {
          const seen = await expectRefused('target presents the wrong controller secret', () =>
            connect({ port: 4420, secret: keys.host, ctrlSecret: keys.ctrl }),
          );
          check(
            seen.kernel.some((l) => /qid 0: controller authentication failed/.test(l)),
            'the host logs the failed controller authentication',
          );
        } finally {
          setTargetKeys({ ctrl: keys.ctrl });
        }
        await connectBoth(keys);
        await disconnectAll();
      },
    },
    {
      name: 'auth-rotate',
      run: async (ctx) => {
        const old = ctx.keys;
        const next = { host: await genKey(), ctrl: old.ctrl };
        const { names, ioMark, writer } = await connectAndWrite(old, 'rotate');
        const mark = (await kernelLog()).length;
        try {
          await writer.waitForWrites(8, 'before the rotation');
          await step('the target takes the new secret; live controllers stay (soft state)', async () => {
            setTargetKeys({ host: next.host });
            await writer.waitForWrites(4, 'after the target changed');
            checkEqual(
              controllers(NQN).map((c) => c.state),
              ['live', 'live'],
              'controller states',
            );
          });
          await step('each controller re-authenticates with the new secret through sysfs', async () => {
            for (const n of names) {
              const cntlid = readSys(`/sys/class/nvme/${n}/cntlid`);
              writeFileSync(`/sys/class/nvme/${n}/dhchap_secret`, next.host);
              await waitFor(`${n} (cntlid ${cntlid}) re-authenticated`, async () =>
                (await logSince(mark)).some((l) => new RegExp(`ctrl ${cntlid} qid 0 host authenticated`).test(l))
                  ? true
                  : undefined,
              );
              checkEqual(readSys(`/sys/class/nvme/${n}/dhchap_secret`), next.host, `${n} dhchap_secret`);
            }
            await writer.waitForWrites(8, 'after the rotation');
          });
        } finally {
          await writer.stop();
        }
        const log = await logSince(mark);
        observe('kernel log of the rotation', log);
        check(!log.some((l) => /authentication failed|mismatch/.test(l)), 'no authentication failure');
        checkEqual(writer.failures, [], 'failed writes');
        const v = await writer.verify();
        checkEqual(v.problems, [], 'blocks that do not verify');
        checkEqual(await ioErrorsSince(ioMark), [], 'kernel I/O errors');
        observe('writes', { written: writer.written, slowestMs: writer.maxWriteMs });
        await disconnectAll();
        ctx.keys = next;
        await expectRefused('the old secret after the rotation', () =>
          connect({ port: 4420, secret: old.host, ctrlSecret: old.ctrl }),
        );
        await connectBoth(next);
        await disconnectAll();
      },
    },
    {
      name: 'auth-config-file',
      run: async ({ keys }) => {
        // os-brick runs `nvme connect -a -s -t -n -q <hostnqn>` (no secret, no -I): nvme-cli 2.3
        // reads /etc/nvme/config.json by default and libnvme 1.3 takes the host entry's
        // dhchap_key when hostnqn and hostid (from /etc/nvme/hostid) match.
        mkdirSync('/etc/nvme', { recursive: true });
        writeFileSync('/etc/nvme/hostnqn', `${HOST_NQN}\n`);
        writeFileSync('/etc/nvme/hostid', `${HOST_ID}\n`);
        const config = [
          {
            hostnqn: HOST_NQN,
            hostid: HOST_ID,
            dhchap_key: keys.host,
            subsystems: [
              {
                nqn: NQN,
                ports: NODES.map((n) => ({
                  transport: 'tcp',
                  traddr: '127.0.0.1',
                  trsvcid: String(n.port),
                  dhchap_ctrl_key: keys.ctrl,
                })),
              },
            ],
          },
        ];
        const args = ['connect', '-t', 'tcp', '-a', '127.0.0.1', '-s', '4420', '-n', NQN, '-q', HOST_NQN];
        // Without `hostid` the entry does not match (libnvme 1.3 nvme_lookup_host compares the
        // hostid nvme-cli read from /etc/nvme/hostid): no key is used and the target refuses.
        const { hostid: _, ...noHostId } = config[0];
        writeFileSync('/etc/nvme/config.json', JSON.stringify([noHostId]), { mode: 0o600 });
        await expectRefused('config.json host entry without hostid', () => shAny('nvme', args));
        writeFileSync('/etc/nvme/config.json', JSON.stringify(config, null, 2), { mode: 0o600 });
        const mark = (await kernelLog()).length;
        const r = await shAny('nvme', args);
        observe('os-brick-style connect with /etc/nvme/config.json', {
          code: r.code,
          stdout: r.stdout.trim(),
          stderr: r.stderr.trim(),
          kernel: await logSince(mark),
        });
        checkEqual(r.code, 0, `nvme ${args.join(' ')}: ${r.stderr.trim()}`);
        const [c] = controllers(NQN);
        const v = authView(c.name);
        observe('controller made from config.json', { ...v, dhchap_secret: v.dhchap_secret === keys.host });
        checkEqual(v.dhchap_secret, keys.host, 'host secret from config.json');
        checkEqual(v.dhchap_ctrl_secret, keys.ctrl, 'controller secret from config.json (per port)');
        await disconnectAll();
        writeFileSync('/etc/nvme/config.json', '[]');
      },
    },
    {
      name: 'auth-rotate-reconnect',
      run: async (ctx) => {
        // The window between the target's new key and the host's: a controller that reconnects
        // then (here: a reset) presents the old key, fails, and keeps retrying; giving it the
        // new key through sysfs lets the next attempt in. The other path carries the I/O.
        const old = ctx.keys;
        const { names, ioMark, writer } = await connectAndWrite(old, 'window');
        let resetError: string | undefined;
        let during: string | null = null;
        const mark = (await kernelLog()).length;
        try {
          await writer.waitForWrites(8, 'before the rotation');
          const next = { host: await genKey(), ctrl: old.ctrl };
          setTargetKeys({ host: next.host });
          ctx.keys = next;
          const [first, second] = names;
          // reset_controller waits for the reconnect (nvme_reset_ctrl_sync) and fails with
          // ENETRESET when it did not end live; it may also block, so it runs in a child process
          // (a synchronous write here once stalled the whole script).
          const reset = await shAny('sh', ['-c', `echo 1 > /sys/class/nvme/${first}/reset_controller`], 60_000);
          resetError = `exit ${reset.code}${reset.timedOut ? ' (timeout)' : ''}: ${reset.stderr.trim()}`;
          await waitFor(`${first} refused on reconnect with the old key`, async () =>
            (await logSince(mark)).some((l) => l.startsWith(`nvme ${first}: qid 0: authentication failed`))
              ? true
              : undefined,
          );
          during = authView(first).state;
          await writer.waitForWrites(4, 'through the other path');
          const write = await shAny(
            'sh',
            ['-c', `printf %s '${next.host}' > /sys/class/nvme/${first}/dhchap_secret`],
            60_000,
          );
          observe('dhchap_secret write on the reconnecting controller', {
            code: write.code,
            stderr: write.stderr.trim(),
          });
          await waitFor(
            `${first} live with the new key`,
            () => (authView(first).state === 'live' ? true : undefined),
            30_000,
            () => authView(first).state,
          );
          writeFileSync(`/sys/class/nvme/${second}/dhchap_secret`, next.host);
          await writer.waitForWrites(8, 'after the rotation');
        } finally {
          await writer.stop();
        }
        const log = await logSince(mark);
        observe('reconnect inside the rotation window', { resetError, stateWhileRefused: during, kernel: log });
        checkEqual(writer.failures, [], 'failed writes');
        checkEqual((await writer.verify()).problems, [], 'blocks that do not verify');
        checkEqual(await ioErrorsSince(ioMark), [], 'kernel I/O errors');
        observe('writes', { written: writer.written, slowestMs: writer.maxWriteMs });
        await disconnectAll();
      },
    },
  ],
  between: async () => {
    await disconnectAll();
  },
  diagnose: () => {
    void kernelLog().then((l) => console.log(l.slice(-40).join('\n')));
  },
  teardown: async ({ plane }) => {
    await disconnectAll();
    await plane.stop();
    for (const d of ['subsystems', 'ports', 'hosts'])
      checkEqual(list(`/sys/kernel/config/nvmet/${d}`), [], `configfs ${d}`);
  },
});
