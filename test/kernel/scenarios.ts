/**
 * The kernel-test scenarios: each is one guest boot running one guest script. A boot costs about
 * 3 s and node's start in the guest about 0.5 s, so a scenario checks a whole story in one
 * script rather than one fact per boot.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startHostPostgres } from './harness/host-postgres.ts';

/** Something a scenario runs on the host while its guest runs (a service the guest calls). */
export interface HostSide {
  /** Extra environment for the guest command. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/**
 * One scenario of a group that shares a boot (and what is slow to start in it): reported on its
 * own line with its own timing, and selectable by name on the command line.
 */
export interface ScenarioPart {
  name: string;
  description: string;
  /** False: run only when named (a scenario still being made to pass; test/kernel/README.md says why). */
  byDefault?: boolean;
}

export interface Scenario {
  name: string;
  description: string;
  /**
   * A group: the guest script runs these parts after one shared setup (`scenarioGroup` in
   * guest/lib.ts) and reports each in `parts.json`; naming a part runs only that part of the
   * group (the shared setup included).
   */
  parts?: ScenarioPart[];
  /** Guest script, relative to the repo root; bundled on the host, run in the guest by node. */
  script: string;
  /** Run when no scenario is named on the command line. */
  byDefault: boolean;
  network?: boolean;
  cmdline?: string[];
  modules?: string[];
  timeoutMs: number;
  host?: () => Promise<HostSide>;
  /**
   * `nvme-auth`: boot Debian's kernel with its nvme modules rebuilt with in-band authentication
   * (harness/nvme-auth.ts, built once per kernel version into the cache). Default: Debian's as is.
   */
  kernel?: 'nvme-auth';
}

export const NVME_MODULES = ['nvmet', 'nvmet-tcp', 'nvme-tcp'];
export const DM_MODULES = ['dm-multipath', 'dm-round-robin', 'dm-service-time'];

/**
 * A one-route HTTP server on the host's loopback; the guest reaches it at 10.0.2.2 through
 * QEMU's user network. Proves the path later scenarios use to reach the service on the host.
 */
async function pingServer(): Promise<HostSide> {
  const token = `portalis-${process.pid}-${Date.now()}`;
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/ping' ? 200 : 404, { 'content-type': 'text/plain' });
    res.end(req.url === '/ping' ? token : 'not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    env: { PORTALIS_HOST_PING_URL: `http://10.0.2.2:${port}/ping`, PORTALIS_HOST_PING_TOKEN: token },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * PostgreSQL for a driver service running in the guest: on the host (natively ~0.5 s, against
 * ~8 s for initdb and start in the emulated guest), reached from the guest at 10.0.2.2.
 */
async function hostDatabase(): Promise<HostSide> {
  const pg = await startHostPostgres();
  return { env: { PORTALIS_KERNEL_DATABASE_URL: pg.guestUrl }, close: pg.stop };
}

export const scenarios: Scenario[] = [
  {
    name: 'boot',
    description: 'the guest environment alone: kernel, modules, configfs, 9p run folder (harness debugging)',
    script: 'test/kernel/guest/boot.ts',
    byDefault: false,
    modules: NVME_MODULES,
    timeoutMs: 90_000,
  },
  {
    name: 'nvmet-native',
    description:
      'nvmet plane: 3 ports, per-volume ANA group, native NVMe multipath, O_DIRECT I/O, ANA flip, resize, node down/up, ACL',
    script: 'test/kernel/guest/nvmet-native.ts',
    byDefault: true,
    network: true,
    modules: NVME_MODULES,
    timeoutMs: 150_000,
    host: pingServer,
  },
  {
    name: 'nvmet-dm',
    description: 'nvmet plane with nvme_core.multipath=N: multipathd assembles /dev/mapper/uuid.<uuid> from two paths',
    script: 'test/kernel/guest/nvmet-dm.ts',
    byDefault: true,
    cmdline: ['nvme_core.multipath=N'],
    modules: [...NVME_MODULES, ...DM_MODULES],
    timeoutMs: 150_000,
  },
  {
    name: 'nvmet-auth',
    description:
      'DH-HMAC-CHAP between nvmet and the NVMe/TCP host (nvme modules rebuilt with CONFIG_NVME_AUTH and ' +
      'CONFIG_NVME_TARGET_AUTH, the FFDHE groups as a module; ffdhe2048), nvme-cli 2.3 and configfs driven by hand',
    script: 'test/kernel/guest/nvmet-auth.ts',
    byDefault: true,
    kernel: 'nvme-auth',
    // The guest cannot autoload crypto modules (the kernel runs modprobe in the initramfs's root,
    // which has none), so what the FFDHE groups need is loaded up front: dh_ffdhe (on a host its
    // crypto-ffdhe* aliases load it) and the default RNG the private keys come from (Debian:
    // CONFIG_CRYPTO_DRBG=m, HMAC-SHA512 by default). jitterentropy_rng does not load in the guest
    // ("Unknown symbol"); the DRBG logs "Continuing without Jitter RNG" and seeds from the kernel.
    modules: [...NVME_MODULES, 'dh_ffdhe', 'sha512_generic', 'drbg'],
    timeoutMs: 300_000,
    parts: [
      {
        name: 'auth-connect',
        description:
          'host and controller secrets from nvme gen-dhchap-key in configfs and on nvme connect: both portals ' +
          'authenticate ("qid 0: authenticated"), sysfs shows the secrets, O_DIRECT pattern reads back',
      },
      {
        name: 'auth-dhgroups',
        description: 'the same connect with the DH groups null, ffdhe3072 and ffdhe8192 (dh_ffdhe.ko)',
      },
      {
        name: 'auth-not-required',
        description:
          'a secret given to a target that does not ask for one: connected unauthenticated, sysfs still shows the secret; ' +
          're-authenticating it through sysfs makes nvmet end the association; the host reconnects, live again',
      },
      {
        name: 'auth-refused',
        description:
          'no secret and a wrong secret: nvme connect fails, the kernel says why, no controller or device left',
      },
      {
        name: 'auth-bidirectional',
        description: 'the target presents the wrong controller secret: the host refuses it, nothing left',
      },
      {
        name: 'auth-rotate',
        description:
          "new host secret on the target, then through each live controller's sysfs dhchap_secret under O_DIRECT " +
          'writes: every controller re-authenticates, no write fails, every block verifies; the old secret is refused after',
      },
      {
        name: 'auth-config-file',
        description:
          "os-brick's plain nvme connect (no secret option) authenticates with the host key and per-port controller " +
          'key from /etc/nvme/config.json (nvme-cli 2.3, libnvme 1.3)',
      },
      {
        name: 'auth-rotate-reconnect',
        // The record of a 6.1 behaviour (test/kernel/README.md): a sysfs secret written to a reconnecting
        // controller left it failing every reconnect, which is why the agent writes live controllers only.
        byDefault: false,
        description:
          'a controller reset between the target taking the new secret and the host getting it: its reconnect is refused ' +
          'and retried; the new secret through sysfs brings it back live; writes go on through the other path, none fails',
      },
    ],
  },
  {
    name: 'agent-auth',
    description:
      'in-band authentication through the whole stack on the nvme-auth kernel: portalis serve with ' +
      'PORTALIS_INBAND_AUTH=required (secrets key from a file), portalis sim on nvmet (ffdhe2048), the agent daemon',
    script: 'test/kernel/guest/agent-auth.ts',
    byDefault: true,
    network: true,
    kernel: 'nvme-auth',
    // As nvmet-auth: the guest cannot autoload the FFDHE group's module or the DRBG.
    modules: [...NVME_MODULES, 'dh_ffdhe', 'sha512_generic', 'drbg'],
    timeoutMs: 600_000,
    host: hostDatabase,
    parts: [
      {
        name: 'agent-auth-attach',
        description:
          'initialize_connection → the agent connects 3 portals, each controller logs "qid 0: authenticated", ' +
          "reports auth_generation of the host's secrets; sysfs = config.json = configfs; O_DIRECT verified",
      },
      {
        name: 'agent-auth-rejected',
        description:
          'the backend holds another host secret: every connect refused, the agent reports auth_rejected, no live ' +
          "controller or block device meanwhile; the right secret back, the agent's retry connects",
      },
      {
        name: 'agent-auth-bidirectional',
        description:
          'the backend presents another controller secret: the host refuses the target, auth_rejected, nothing ' +
          'half-connected; the right secret back, connected',
      },
      {
        name: 'agent-auth-rotate',
        description:
          'POST /v1/hosts/{nqn}/secrets/rotate under O_DIRECT writes: the host secret, then the controller secret, each ' +
          're-authenticated in place (one sysfs write per controller and half, no authentication failure); no write ' +
          'fails, every path on the new generation, the rotation reaches idle, the old secrets refused',
      },
      {
        name: 'agent-auth-rotate-path-down',
        description:
          'a node down while the secrets rotate: the rotation finishes without it; back, its controller is refused on ' +
          'the retired secret and the agent replaces it; every path live on the new pair, no write fails',
      },
      {
        name: 'agent-auth-rotate-all-down',
        description:
          'every node down (the host cut off) when the secrets are rotated: the service waits (host_paths_down), the ' +
          'target keeps the pair the paths hold; back, the paths reconnect, the rotation moves them in place, data verified',
      },
    ],
  },
  {
    name: 'sim-nvmet',
    description:
      'portalis serve + portalis sim (nvmet plane) in the guest: REST create/attach, nvme-cli connect, O_DIRECT I/O, ' +
      'failover under writes via the fault API, extend via PUT+If-Match, detach, delete cleans the target',
    script: 'test/kernel/guest/sim-nvmet.ts',
    byDefault: true,
    network: true,
    modules: NVME_MODULES,
    timeoutMs: 300_000,
    host: hostDatabase,
  },
  {
    name: 'agent-native',
    description:
      'one boot, one stack (portalis sim on nvmet, portalis serve, the portalis agent daemon) for the agent scenarios ' +
      'with native NVMe multipath; nothing connected by hand',
    script: 'test/kernel/guest/agent-native.ts',
    byDefault: true,
    network: true,
    modules: NVME_MODULES,
    timeoutMs: 420_000,
    host: hostDatabase,
    parts: [
      {
        name: 'agent-attach',
        description:
          "3-replica volume attached with the agent's own connector: 3 portals connected by the agent, one head, " +
          'report connected/optimal with ' +
          '3 paths matching sysfs; O_DIRECT pattern; terminate pending until the agent disconnected; no controller left, host revoked',
      },
      {
        name: 'agent-shared-subsystem',
        description:
          'two volumes of one subsystem on the host; one detached (then deleted) while writes run on the other: ' +
          'no write fails, its controllers never leave live',
      },
      {
        name: 'agent-failover',
        description:
          'optimized node down and up via the fault API under O_DIRECT writes: no I/O error, every block verifies, ' +
          'reported health optimal → degraded → optimal',
      },
      {
        name: 'agent-extend',
        description:
          'online extend through the service: the agent reports the new size, sysfs and blockdev show it, ' +
          'old data intact, new space usable',
      },
      {
        name: 'agent-killed',
        description:
          'agent SIGKILLed (with its children) while its third nvme connect is held; ' +
          'the restarted agent adopts the two controllers and connects the third: one per portal',
      },
      {
        name: 'agent-busy',
        description:
          'detach while a process holds the device open: pending, in_use reported, device and access stay; force tears it down',
      },
      {
        name: 'agent-live-paths',
        description:
          'under O_DIRECT writes on two volumes: a node joins, a replica moves node 2 → 3, node 1 is readdressed; ' +
          "the agent ends on exactly the served portals, the other volume's node-2 path never drops, every block verifies",
      },
    ],
  },
  {
    name: 'agent-dm',
    description: 'the agent with nvme_core.multipath=N and a DM connector (own boot: multipath is a boot parameter)',
    script: 'test/kernel/guest/agent-dm.ts',
    byDefault: true,
    network: true,
    cmdline: ['nvme_core.multipath=N'],
    modules: [...NVME_MODULES, ...DM_MODULES],
    // ~70 s of shared setup, ~80 s for agent-dm, ~100 s for agent-dm-live-paths on a quiet
    // machine (run of 2026-12-01); emulation under load stretches all of it.
    timeoutMs: 600_000,
    host: hostDatabase,
    parts: [
      {
        name: 'agent-dm',
        description:
          'DM connector, dm_replicas: the agent connects 3 replicas, multipathd assembles /dev/mapper/uuid.<uuid>, ' +
          'O_DIRECT verified, one path failed ' +
          '(node down) and restored under writes, clean teardown with the map removed before any path goes',
      },
      {
        name: 'agent-dm-live-paths',
        description:
          'the live-paths scenario with DM maps: the new path joins the map before the old one leaves; ' +
          "the other volume's node-2 path stays active; both maps end on exactly the served portals",
      },
    ],
  },
  {
    name: 'nova-native',
    description:
      "a Nova compute host: Debian's os-brick (driven as Debian's Nova drives it) connects and disconnects, " +
      'the portalis agent on the same host only assists; native NVMe multipath',
    script: 'test/kernel/guest/nova-native.ts',
    byDefault: true,
    network: true,
    // dm-multipath: multipathd runs on a Nova multipath host (see guest/nova-native.ts).
    modules: [...NVME_MODULES, ...DM_MODULES],
    // 181–359 s at load average 4–11 (runs of 2026-12-07), half of it os-brick's python3 imports
    // and node's start beside them; the margin is for a slower machine.
    timeoutMs: 720_000,
    host: hostDatabase,
    parts: [
      {
        name: 'nova-osbrick-alone',
        description:
          'no agent: os-brick connect_volume (one nvme connect per portal, no warning), O_DIRECT I/O on its device, ' +
          'disconnect_volume, terminate revokes; nothing left',
      },
      {
        name: 'nova-agent-first',
        description:
          'the agent runs when os-brick connects: host-connected, awaiting_host, os-brick connects without failure or ' +
          "warning, the agent reports os-brick's device connected and ran no nvme connect; I/O; nothing left",
      },
      {
        name: 'nova-agent-late',
        description:
          "the agent starts after os-brick's connect: it observes os-brick's controllers (unchanged) and reports them; " +
          'I/O; nothing left',
      },
      {
        name: 'nova-host-detach',
        description:
          "after os-brick's disconnect, before terminate: host_detached, health detached, no controller comes back " +
          'over two recheck periods (100 ms samples); nothing left after terminate',
      },
      {
        name: 'nova-live-paths',
        description:
          "a replica moves under O_DIRECT writes on os-brick's device: the agent adds the new portal's path under " +
          "os-brick's head (its one nvme connect), no write fails, every block verifies; its controller released after terminate",
      },
    ],
  },
];
