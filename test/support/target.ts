import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import supertest from 'supertest';
import type TestAgent from 'supertest/lib/agent.js';
import { loadConfig } from '../../src/config.ts';
import type { DriverDeps } from '../../src/driver/deps.ts';
import { type Logger, silentLogger } from '../../src/shared/logger.ts';
import { createApp } from '../../src/server/app.ts';
import { Authenticator } from '../../src/server/auth.ts';
import { createHttpServer } from '../../src/server/http-server.ts';
import { composeDeps } from '../../src/server/service.ts';
import type { DataPlane } from '../../src/sim/data-plane.ts';
import { type SimServer, startSimServer } from '../../src/sim/server.ts';
import { TcpProxy } from './tcp-proxy.ts';
import { createTestDatabase } from './db.ts';

/**
 * What a contract test talks to: the service (through supertest) and the simulator behind it
 * (its LightOS API, to check ACLs, and its fault API).
 *
 * In-process by default: a fresh database, a simulator on an ephemeral port and the real app.
 * With PORTALIS_TEST_URL, PORTALIS_TEST_TOKEN and PORTALIS_TEST_SIM_URL set, the same tests run
 * against a running service (for example the docker-compose stack, or one started from the CLI).
 */
export interface Target {
  http: TestAgent<supertest.Test>;
  token: string;
  simUrl: string;
  /** The JWT the simulator's LightOS API wants, when it wants one. */
  simJwt?: string;
  /** The service's app when in-process (null by URL). */
  app: Express | null;
  /** The service's base URL when it listens on a port (by URL, or in-process with `listen`). */
  url?: string;
  /** In-process only: the test database's name. */
  databaseName?: string;
  /** In-process only: the test database's URL and the service's domain dependencies. */
  databaseUrl?: string;
  deps?: DriverDeps;
  /** In-process only: the simulator and the optional proxy in front of it. */
  sim?: SimServer;
  proxy?: TcpProxy;
  close(): Promise<void>;
}

export const byUrl = (): boolean => Boolean(process.env.PORTALIS_TEST_URL);

export interface TargetOptions {
  logger?: Logger;
  requestTimeoutMs?: number;
  operationTimeoutMs?: number;
  simJwt?: string;
  /** Put a TCP proxy between the service and the simulator, to refuse connections at will. */
  proxy?: boolean;
  /** The simulator's data plane (default: in memory). */
  dataPlane?: DataPlane;
  /** PORTALIS_DB_POOL_MAX (default: the service's). */
  dbPoolMax?: number;
  /** A token that may read /metrics only. */
  metricsToken?: string;
  /**
   * Serve the app on an ephemeral port through the service's own HTTP server (its parser-error
   * and `Expect` handling), and talk to it over real HTTP; supertest alone makes a bare server.
   */
  listen?: boolean;
  /** PORTALIS_PORTAL_REFRESH_MS (default: the service's 30 s). */
  portalRefreshMs?: number;
  /** More service settings (e.g. PORTALIS_INBAND_AUTH, PORTALIS_SECRETS_KEY). */
  env?: Record<string, string>;
}

export async function startTarget(opts: TargetOptions = {}): Promise<Target> {
  if (byUrl()) {
    const token = process.env.PORTALIS_TEST_TOKEN;
    const simUrl = process.env.PORTALIS_TEST_SIM_URL;
    if (!token || !simUrl) throw new Error('PORTALIS_TEST_URL needs PORTALIS_TEST_TOKEN and PORTALIS_TEST_SIM_URL too');
    return {
      http: supertest(process.env.PORTALIS_TEST_URL!.replace(/\/+$/, '')),
      url: process.env.PORTALIS_TEST_URL!.replace(/\/+$/, ''),
      token,
      simUrl: simUrl.replace(/\/+$/, ''),
      simJwt: process.env.PORTALIS_TEST_SIM_JWT || undefined,
      app: null,
      close: async () => {},
    };
  }
  const log = opts.logger ?? silentLogger;
  const database = await createTestDatabase();
  const sim = await startSimServer({
    host: '127.0.0.1',
    port: 0,
    nodes: 3,
    logger: log,
    jwt: opts.simJwt,
    dataPlane: opts.dataPlane,
  });
  const stops: (() => Promise<void>)[] = [];
  const proxy = opts.proxy ? new TcpProxy(Number(new URL(sim.url).port)) : undefined;
  await proxy?.start();
  const closeAll = async () => {
    for (const s of stops.reverse()) await s();
    await proxy?.stop();
    await sim.close();
    await database.drop();
  };
  try {
    return await assemble();
  } catch (e) {
    await closeAll();
    throw e;
  }

  async function assemble(): Promise<Target> {
    const config = loadConfig({
      DATABASE_URL: database.url,
      PORTALIS_BACKEND: 'sim',
      PORTALIS_SIM_URL: proxy ? proxy.url : sim.url,
      PORTALIS_LIGHTOS_TIMEOUT_MS: String(opts.requestTimeoutMs ?? 5000),
      PORTALIS_LIGHTOS_POLL_INTERVAL_MS: '20',
      ...(opts.operationTimeoutMs ? { PORTALIS_LIGHTOS_OPERATION_TIMEOUT_MS: String(opts.operationTimeoutMs) } : {}),
      ...(opts.simJwt ? { PORTALIS_LIGHTOS_JWT: opts.simJwt } : {}),
      ...(opts.dbPoolMax ? { PORTALIS_DB_POOL_MAX: String(opts.dbPoolMax) } : {}),
      ...(opts.portalRefreshMs ? { PORTALIS_PORTAL_REFRESH_MS: String(opts.portalRefreshMs) } : {}),
      ...opts.env,
    });
    const { deps, metrics, readiness } = await composeDeps(config, log, stops);
    const token = `test-admin-${randomUUID()}`;
    const app = await createApp({
      deps,
      auth: new Authenticator(token, deps, opts.metricsToken ?? null),
      metrics,
      logger: log,
      validateResponses: true,
      readiness,
    });
    let url: string | undefined;
    if (opts.listen) {
      const server = createHttpServer(app, log);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
      stops.push(
        () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      );
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    }
    return {
      http: url ? supertest(url) : supertest(app),
      url,
      token,
      simUrl: sim.url,
      simJwt: opts.simJwt,
      databaseName: new URL(database.url).pathname.slice(1),
      databaseUrl: database.url,
      deps,
      app,
      sim,
      proxy,
      close: closeAll,
    };
  }
}

let hostCounter = 0;

/** An os-brick-style connector for a made-up compute host. */
export function connector(over: Record<string, unknown> = {}): Record<string, unknown> {
  hostCounter += 1;
  const id = randomUUID();
  return {
    nqn: `nqn.2014-08.org.nvmexpress:uuid:${id}`,
    host: `compute-${hostCounter}-${id.slice(0, 8)}`,
    nvme_hostid: id,
    ip: '192.0.2.10',
    host_ips: ['192.0.2.10'],
    multipath: false,
    enforce_multipath: false,
    nvme_native_multipath: false,
    platform: 'x86_64',
    os_type: 'linux',
    ...over,
  };
}

export const NATIVE = { multipath: true, nvme_native_multipath: true };
/**
 * The Portalis agent's connector: `portalis agent connector-properties` always writes
 * `dm_multipath`, os-brick never does, and that makes the attachment agent-connected.
 */
export const AGENT = { dm_multipath: false };
/** The Portalis agent on a host with native multipath off and multipathd: it asks for `dm_replicas`. */
export const DM = { multipath: true, nvme_native_multipath: false, dm_multipath: true };
/** os-brick on a host booted with nvme_core.multipath=N: no `dm_multipath` key, so single. */
export const OSBRICK_NO_NATIVE = { multipath: true, nvme_native_multipath: false };
