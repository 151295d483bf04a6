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
import { SimCluster } from './cluster.ts';
import type { DataPlane } from './data-plane.ts';
import { Faults } from './faults.ts';
import { MemoryDataPlane } from './memory-data-plane.ts';
import { grpcCodeFor } from './model.ts';
import { DEFAULT_NVMET_ROOT } from './nvmet/configfs.ts';
import { NvmetDataPlane } from './nvmet/nvmet-data-plane.ts';
import { formatEndpoint } from './wire.ts';
import { createLogger, type Logger, silentLogger } from '../shared/logger.ts';
import { ConfigError, boolVar, choiceVar, intVar } from '../shared/env.ts';

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
  const app = createSimApp({ cluster, faults, jwt: opts.jwt, logger });
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
  logLevel: string;
  /** The cluster's logical capacity (10 TiB unless set; the boot-storm benchmark needs more). */
  capacityBytes: number;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function addrVar(env: NodeJS.ProcessEnv, name: string, def: string): string {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const v = raw.trim().replace(/^\[(.*)\]$/, '$1');
  if (!isIP(v) && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(v)) {
    throw new ConfigError(name, `must be an IP address or host name, got ${JSON.stringify(raw)}`);
  }
  return v;
}

function pathVar(env: NodeJS.ProcessEnv, name: string, def: string, cwd: string, mustBeAbsolute = false): string {
  const raw = env[name];
  const v = raw === undefined || raw === '' ? def : raw;
  if (v.includes('\0')) throw new ConfigError(name, `must be a path, got ${JSON.stringify(raw)}`);
  if (mustBeAbsolute && !path.isAbsolute(v))
    throw new ConfigError(name, `must be an absolute path, got ${JSON.stringify(raw)}`);
  return path.resolve(cwd, v);
}

/**
 * Reads the `PORTALIS_SIM_*` variables; throws ConfigError naming the bad one. Relative
 * paths are resolved against `cwd`.
 */
export function simConfigFromEnv(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): SimEnvConfig {
  const nodes = intVar(env, 'PORTALIS_SIM_NODES', 3, 1, 64);
  const basePort = intVar(env, 'PORTALIS_SIM_BASE_PORT', 4420, 1, 65535);
  if (basePort + nodes - 1 > 65535) {
    throw new ConfigError(
      'PORTALIS_SIM_BASE_PORT',
      `${basePort} leaves no port for ${nodes} nodes (PORTALIS_SIM_NODES)`,
    );
  }
  const jwt = env.PORTALIS_SIM_JWT;
  if (jwt !== undefined && jwt !== '' && /\s/.test(jwt))
    throw new ConfigError('PORTALIS_SIM_JWT', 'must not contain whitespace');
  return {
    host: addrVar(env, 'PORTALIS_SIM_HOST', '127.0.0.1'),
    port: intVar(env, 'PORTALIS_SIM_PORT', 8090, 0, 65535),
    nodes,
    nodeAddress: addrVar(env, 'PORTALIS_SIM_NODE_ADDRESS', '127.0.0.1'),
    basePort,
    jwt: jwt === undefined || jwt === '' ? undefined : jwt,
    dataPlane: choiceVar(env, 'PORTALIS_SIM_DATA_PLANE', 'memory', ['memory', 'nvmet'] as const),
    dataDir: pathVar(env, 'PORTALIS_SIM_DATA_DIR', path.join('.portalis', 'sim-nvmet'), cwd),
    nvmetConfigfs: pathVar(env, 'PORTALIS_SIM_NVMET_CONFIGFS', DEFAULT_NVMET_ROOT, cwd, true),
    nvmetAllowAnyHost: boolVar(env, 'PORTALIS_SIM_NVMET_ALLOW_ANY_HOST', false),
    logLevel: choiceVar(env, 'PORTALIS_SIM_LOG_LEVEL', 'info', LOG_LEVELS),
    capacityBytes: intVar(env, 'PORTALIS_SIM_CAPACITY_GIB', 10 * 1024, 1, 2 ** 30) * 2 ** 30,
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
