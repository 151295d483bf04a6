/**
 * Starting the simulator: `startSimServer` for tests and the service's in-process default,
 * `runSim` for `portalis sim` (configured from the environment).
 */
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import path from 'node:path';
import { createSimApp } from './app.ts';
import { SimTrustedHosts } from './trusted-hosts.ts';
import { SimCluster } from './cluster.ts';
import type { DataPlane } from './data-plane.ts';
import { Faults } from './faults.ts';
import { MemoryDataPlane } from './memory-data-plane.ts';
import { grpcCodeFor } from './model.ts';
import { DEFAULT_NVMET_ROOT } from './nvmet/configfs.ts';
import { NvmetDataPlane } from './nvmet/nvmet-data-plane.ts';
import { formatEndpoint } from './wire.ts';
import { createLogger, type Logger, silentLogger } from '../shared/logger.ts';
import { bool, ConfigError, choice, int, invalid, parseSettings, text } from '../shared/env.ts';

export interface SimServerOptions {
  host?: string;
  /** 0 picks an ephemeral port. */
  port?: number;
  nodes?: number;
  nodeAddress?: string;
  basePort?: number;
  /** When set, every `/api/v2` request needs `Authorization: Bearer <jwt>`. */
  jwt?: string;
  capacityBytes?: number;
  dataPlane?: DataPlane;
  logger?: Logger;
}

export interface SimServer {
  /** Base URL, e.g. `http://127.0.0.1:8090`. */
  url: string;
  cluster: SimCluster;
  faults: Faults;
  /** In-band authentication: the trusted hosts and the secrets the simulated target accepts. */
  trustedHosts: SimTrustedHosts;
  close(): Promise<void>;
}

export async function startSimServer(opts: SimServerOptions = {}): Promise<SimServer> {
  const logger = opts.logger ?? silentLogger;
  const cluster = new SimCluster({
    nodes: opts.nodes,
    nodeAddress: opts.nodeAddress,
    basePort: opts.basePort,
    capacityBytes: opts.capacityBytes,
    dataPlane: opts.dataPlane,
    logger,
  });
  try {
    await cluster.start();
  } catch (err) {
    // Undo whatever the data plane set up before it failed (nvmet: configfs items).
    await cluster.close().catch(() => undefined);
    throw err;
  }
  const faults = new Faults(cluster);
  // The secrets reach the data plane, so that a kernel target (nvmet) enforces them.
  const trustedHosts = new SimTrustedHosts(async (hostNqn, s) => {
    const r = await cluster.dataPlane.setHostSecrets?.(hostNqn, {
      hostSecret: s.hostSecret,
      ctrlSecret: s.targetSecret,
    });
    if (r === 'unsupported') logger.warn({ host: hostNqn }, 'the target kernel cannot enforce in-band authentication');
  });
  const app = createSimApp({ cluster, faults, jwt: opts.jwt, logger, trustedHosts });
  const host = opts.host ?? '127.0.0.1';
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(opts.port ?? 0, host, (err?: Error) => (err ? reject(err) : resolve(s)));
    s.once('error', reject);
    s.on('checkExpectation', (req, res) => handleExpectation(s, req, res));
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${formatEndpoint(host, port)}`,
    cluster,
    faults,
    trustedHosts,
    close() {
      closing ??= (async () => {
        // Hung requests and idle keep-alive sockets would otherwise hold server.close() open.
        faults.releaseHung();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
        await cluster.close();
      })();
      return closing;
    },
  };
}

/**
 * Node's HTTP server answers 417 to any `Expect` but `100-continue` unless 'checkExpectation'
 * is handled (Node docs, http.Server event 'checkExpectation'). Cinder's LightOS driver sends an
 * empty `Expect:` on every request (to stop curl-style clients waiting for a 100 Continue); an
 * empty field asks for nothing, so the request goes to the app as usual, as Go's net/http (the
 * LightOS API's server) treats it. A real unknown expectation still gets 417 (RFC 9110 10.1.1).
 */
export function handleExpectation(server: Server, req: IncomingMessage, res: ServerResponse): void {
  if ((req.headers.expect ?? '').trim() === '') {
    server.emit('request', req, res);
    return;
  }
  res.writeHead(417, { 'content-type': 'application/json', connection: 'close' });
  res.end(
    JSON.stringify({
      code: grpcCodeFor(417),
      message: `expectation '${req.headers.expect}' is not supported`,
      details: [],
    }),
  );
}

export type SimDataPlaneKind = 'memory' | 'nvmet';

export interface SimEnvConfig {
  host: string;
  port: number;
  nodes: number;
  nodeAddress: string;
  basePort: number;
  jwt?: string;
  dataPlane: SimDataPlaneKind;
  /** nvmet: folder of the volumes' sparse backing files (absolute). */
  dataDir: string;
  /** nvmet: nvmet's configfs folder (absolute). */
  nvmetConfigfs: string;
  /** nvmet: attr_allow_any_host 1, every host may connect whatever the ACLs. */
  nvmetAllowAnyHost: boolean;
  /** dhchap_dhgroup written for hosts with secrets; `null`: HMAC-CHAP without the DH exchange. */
  nvmetDhgroup: (typeof NVMET_DHGROUPS)[number];
  logLevel: string;
  /** The cluster's logical capacity (10 TiB unless set; the boot-storm benchmark needs more). */
  capacityBytes: number;
}

/** dhchap_dhgroup values of the kernel target (drivers/nvme/common/auth.c, its dhgroup table). */
const NVMET_DHGROUPS = ['null', 'ffdhe2048', 'ffdhe3072', 'ffdhe4096', 'ffdhe6144', 'ffdhe8192'] as const;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function address(raw: string): string {
  const v = raw.replace(/^\[(.*)\]$/, '$1');
  if (!isIP(v) && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(v))
    invalid(`must be an IP address or host name, got ${JSON.stringify(raw)}`);
  return v;
}

function aPath(v: string): string {
  return v.includes('\0') ? invalid(`must be a path, got ${JSON.stringify(v)}`) : v;
}

/** The simulator's settings (also the table of docs/simulator.md). */
export const SIM_SETTINGS = {
  PORTALIS_SIM_HOST: text({ def: '127.0.0.1', parse: address, doc: 'address of its REST API' }),
  PORTALIS_SIM_PORT: int({ def: 8090, min: 0, max: 65535, doc: 'port of its REST API' }),
  PORTALIS_SIM_NODES: int({ def: 3, min: 1, max: 64, doc: 'storage nodes' }),
  PORTALIS_SIM_CAPACITY_GIB: int({
    def: 10 * 1024,
    min: 1,
    max: 2 ** 30,
    shown: '10240 (10 TiB)',
    doc: "the cluster's logical capacity (the sum of its volumes' sizes)",
  }),
  PORTALIS_SIM_NODE_ADDRESS: text({ def: '127.0.0.1', parse: address, doc: "the nodes' NVMe/TCP address" }),
  PORTALIS_SIM_BASE_PORT: int({ def: 4420, min: 1, max: 65535, doc: 'node _i_ serves NVMe/TCP on base + _i_' }),
  PORTALIS_SIM_JWT: text({
    parse: (v) => (/\s/.test(v) ? invalid('must not contain whitespace') : v),
    doc: 'require this bearer JWT on `/api/v2`',
  }),
  PORTALIS_SIM_DATA_PLANE: choice({
    def: 'memory',
    choices: ['memory', 'nvmet'] as const,
    shown: '`memory`',
    doc: '`memory` (nothing a host can connect to) or `nvmet` (the kernel target, through configfs)',
  }),
  PORTALIS_SIM_DATA_DIR: text({
    def: path.join('.portalis', 'sim-nvmet'),
    parse: aPath,
    shown: '`./.portalis/sim-nvmet`',
    doc: "`nvmet`: folder of the volumes' sparse backing files",
  }),
  PORTALIS_SIM_NVMET_CONFIGFS: text({
    def: DEFAULT_NVMET_ROOT,
    parse: (v) => (path.isAbsolute(aPath(v)) ? v : invalid(`must be an absolute path, got ${JSON.stringify(v)}`)),
    shown: `\`${DEFAULT_NVMET_ROOT}\``,
    doc: "`nvmet`: nvmet's configfs folder",
  }),
  PORTALIS_SIM_NVMET_ALLOW_ANY_HOST: bool({
    def: false,
    doc: '`nvmet`: let every host connect, whatever the ACLs',
  }),
  PORTALIS_SIM_NVMET_DHGROUP: choice({
    def: 'null',
    choices: NVMET_DHGROUPS,
    doc:
      '`nvmet`: `dhchap_dhgroup` written for hosts with in-band authentication secrets; `null`: HMAC-CHAP without ' +
      'the DH exchange (the only group a kernel without the RFC 7919 groups offers)',
  }),
  PORTALIS_SIM_LOG_LEVEL: choice({
    def: 'info',
    choices: LOG_LEVELS,
    doc: 'pino log level (data-plane failures are logged at `error`)',
  }),
};

/**
 * Reads the `PORTALIS_SIM_*` variables; throws ConfigError naming the bad one. Relative
 * paths are resolved against `cwd`.
 */
export function simConfigFromEnv(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): SimEnvConfig {
  const s = parseSettings(SIM_SETTINGS, env);
  const nodes = s.PORTALIS_SIM_NODES;
  const basePort = s.PORTALIS_SIM_BASE_PORT;
  if (basePort + nodes - 1 > 65535) {
    throw new ConfigError(
      'PORTALIS_SIM_BASE_PORT',
      `${basePort} leaves no port for ${nodes} nodes (PORTALIS_SIM_NODES)`,
    );
  }
  return {
    host: s.PORTALIS_SIM_HOST,
    port: s.PORTALIS_SIM_PORT,
    nodes,
    nodeAddress: s.PORTALIS_SIM_NODE_ADDRESS,
    basePort,
    jwt: s.PORTALIS_SIM_JWT,
    dataPlane: s.PORTALIS_SIM_DATA_PLANE,
    dataDir: path.resolve(cwd, s.PORTALIS_SIM_DATA_DIR),
    nvmetConfigfs: path.resolve(cwd, s.PORTALIS_SIM_NVMET_CONFIGFS),
    nvmetAllowAnyHost: s.PORTALIS_SIM_NVMET_ALLOW_ANY_HOST,
    nvmetDhgroup: s.PORTALIS_SIM_NVMET_DHGROUP,
    logLevel: s.PORTALIS_SIM_LOG_LEVEL,
    capacityBytes: s.PORTALIS_SIM_CAPACITY_GIB * 2 ** 30,
  };
}

/**
 * The data plane the configuration asks for. nvmet needs the kernel target's configfs (root,
 * modules nvmet and nvmet-tcp, configfs mounted); without it start-up stops here with a
 * message naming the variables, rather than on the first configfs write.
 */
export function dataPlaneFromConfig(cfg: SimEnvConfig): DataPlane {
  if (cfg.dataPlane === 'memory') return new MemoryDataPlane();
  if (!existsSync(path.join(cfg.nvmetConfigfs, 'subsystems'))) {
    throw new ConfigError(
      'PORTALIS_SIM_DATA_PLANE',
      `nvmet needs the kernel NVMe target's configfs at ${cfg.nvmetConfigfs} ` +
        '(PORTALIS_SIM_NVMET_CONFIGFS): as root, `modprobe nvmet nvmet-tcp` and mount configfs on /sys/kernel/config',
    );
  }
  return new NvmetDataPlane({
    dataDir: cfg.dataDir,
    configfsRoot: cfg.nvmetConfigfs,
    allowAnyHost: cfg.nvmetAllowAnyHost,
    dhgroup: cfg.nvmetDhgroup === 'null' ? undefined : cfg.nvmetDhgroup,
  });
}

/**
 * `portalis sim`: configure from the environment, start, print the URL. Throws ConfigError
 * on bad configuration (the caller prints it and exits non-zero).
 */
export async function runSim(
  env: NodeJS.ProcessEnv = process.env,
  opts: { logger?: Logger; dataPlane?: DataPlane; out?: (line: string) => void } = {},
): Promise<SimServer> {
  const cfg = simConfigFromEnv(env);
  const logger = opts.logger ?? createLogger({ level: cfg.logLevel, name: 'portalis-sim' });
  const dataPlane = opts.dataPlane ?? dataPlaneFromConfig(cfg);
  const sim = await startSimServer({ ...cfg, logger, dataPlane });
  const out = opts.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const where = dataPlane.kind === 'nvmet' ? ` at ${cfg.nvmetConfigfs}, files in ${cfg.dataDir}` : '';
  out(
    `Portalis LightOS simulator listening on ${sim.url} (${cfg.nodes} nodes, data plane ${dataPlane.kind}${where}` +
      `${cfg.jwt ? ', JWT required' : ''}); admin API at ${sim.url}/sim/v1`,
  );
  return sim;
}
