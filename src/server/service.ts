import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LightosBackend } from '../backend/lightos/index.ts';
import { plainSecretsWarning, type ServiceConfig } from '../config.ts';
import { refreshPortals } from '../driver/refresh-portals.ts';
import { type FleetJob, runFleetJob } from '../driver/fleet-jobs.ts';
import { cacheOnSuccess, type DriverDeps } from '../driver/deps.ts';
import { CAPACITY_JOB } from '../driver/get-capabilities.ts';
import type { StorageBackend } from '../driver/ports.ts';
import type { Logger } from '../shared/logger.ts';
import { createDb, openDb, type Db } from '../store/db.ts';
import { requireSessionPerConnection } from '../store/session-check.ts';
import { PgVolumeLocks } from '../store/locks.ts';
import { PgStore } from '../store/pg-store.ts';
import { PgHostChangeFeed } from '../store/change-feed.ts';
import { PgHostStore } from '../store/host-store.ts';
import { PgHostSecretStore } from '../store/secret-store.ts';
import { advanceAllRotations } from '../driver/host-secrets.ts';
import { PgHealthStore } from '../store/health-store.ts';
import { PgRefreshStore } from '../store/refresh-store.ts';
import { PgPeriodicJobs, sharedCapacity } from '../store/periodic-jobs.ts';
import { pruneHealthEvents } from '../driver/health.ts';
import { createApp } from './app.ts';
import type { ReadinessCheck } from './readiness.ts';
import { Authenticator } from './auth.ts';
import { createServiceServer } from './listener.ts';
import { instrumentBackend, ServiceMetrics } from './metrics.ts';
import { periodicJobMetrics } from './periodic-metrics.ts';
import { pgMetricsSources } from '../store/metrics-source.ts';
import { REPORT_STALE_MS } from '../driver/agent-sync.ts';
import { hardenServer } from './http-server.ts';

export interface RunningService {
  url: string;
  adminToken: string;
  /** Where the generated token came from, for the start-up banner. */
  tokenSource: 'environment' | 'data-dir' | 'generated';
  backendDescription: string;
  databaseDescription: string;
  /** Re-reads PORTALIS_TLS_CERT / PORTALIS_TLS_KEY (SIGHUP); open connections are kept. No-op over HTTP. */
  reloadTls(): Promise<void>;
  close(): Promise<void>;
}

/** The admin token: the environment's, else the one kept in the data directory, else a new one kept there. */
async function adminToken(config: ServiceConfig): Promise<{ token: string; source: RunningService['tokenSource'] }> {
  if (config.adminToken) return { token: config.adminToken, source: 'environment' };
  const file = path.join(config.dataDir, 'admin-token');
  if (existsSync(file)) return { token: (await readFile(file, 'utf8')).trim(), source: 'data-dir' };
  await mkdir(config.dataDir, { recursive: true });
  const token = randomBytes(24).toString('base64url');
  await writeFile(file, token + '\n', { mode: 0o600 });
  return { token, source: 'generated' };
}

/** The service's parts from its configuration; everything `close()` must stop is pushed on `stops`. */
export async function composeDeps(config: ServiceConfig, log: Logger, stops: (() => Promise<void>)[]) {
  let databaseUrl = config.databaseUrl;
  let databaseDescription = 'DATABASE_URL';
  // The embedded PostgreSQL and the in-process simulator are imported only when used: a service
  // with DATABASE_URL and a real backend starts without loading either.
  if (!databaseUrl) {
    const { startEmbeddedPostgres } = await import('../store/embedded.ts');
    const pg = await startEmbeddedPostgres({ dir: path.join(config.dataDir, 'postgres'), logger: log });
    stops.push(pg.stop);
    databaseUrl = pg.url;
    databaseDescription = `embedded PostgreSQL in ${path.join(config.dataDir, 'postgres')}`;
  } else {
    // Before anything takes a lock: a transaction-mode pooler is refused here, naming its setting.
    await requireSessionPerConnection(databaseUrl);
  }
  const db: Db = await openDb(databaseUrl, { poolMax: config.dbPoolMax, logger: log });
  stops.push(() => db.destroy());
  // The agents' queries (token checks, long polls, reports) on a pool of their own: every volume
  // operation holds a connection of the main pool across its backend calls (the advisory lock is
  // session-level), so at 16 concurrent initializes a woken poll's read queued behind them and
  // reached its agent ~0.9 s later (bench fanout, pool 10).
  const agentDb: Db = createDb(databaseUrl, { poolMax: config.dbAgentPoolMax, logger: log });
  stops.push(() => agentDb.destroy());
  const hostSecrets = config.secrets ? new PgHostSecretStore(agentDb, config.secrets) : undefined;
  // After the migrations, before the service answers: a replica with another key stops here.
  await hostSecrets?.checkKey();
  // Reads outside any lock (get and list, the health matrix, the scrape, the readiness check) on a
  // third pool, for the same reason: with the backend hanging, 30 initializes held the main pool's
  // 10 connections and queued the rest, and every read waited 30 s for a connection behind them.
  // The main pool is left to the lock holders, who run all their queries on the one they hold.
  const readDb: Db = createDb(databaseUrl, { poolMax: config.dbReadPoolMax, logger: log });
  stops.push(() => readDb.destroy());

  let endpoints = config.lightos.endpoints;
  let jwt = config.lightos.jwt;
  let backendDescription = `LightOS API v2 at ${endpoints.join(', ')}`;
  if (config.backend === 'sim') {
    if (config.simUrl) {
      endpoints = [config.simUrl];
      backendDescription = `simulator at ${config.simUrl}`;
    } else {
      // Loaded only here: a production start-up (lightos, or a simulator by URL) never loads it.
      const { startSimServer } = await import('../sim/server.ts');
      const sim = await startSimServer({ host: '127.0.0.1', port: 0, nodes: 3, logger: log });
      stops.push(() => sim.close());
      endpoints = [sim.url];
      jwt = null;
      backendDescription = `in-process simulator (3 nodes, in-memory data plane) at ${sim.url}`;
    }
  }
  const metrics = new ServiceMetrics(pgMetricsSources(readDb, REPORT_STALE_MS, db));
  const lightos: StorageBackend = new LightosBackend({
    endpoints,
    jwt: jwt ?? undefined,
    project: config.lightos.project,
    requestTimeoutMs: config.lightos.requestTimeoutMs,
    operationTimeoutMs: config.lightos.operationTimeoutMs ?? undefined,
    pollIntervalMs: config.lightos.pollIntervalMs,
    tlsVerify: config.lightos.tlsVerify,
    logger: log,
  });
  const backend = instrumentBackend(lightos, metrics);
  const hostChanges = new PgHostChangeFeed(databaseUrl, log);
  await hostChanges.start();
  stops.push(() => hostChanges.close());
  const periodicJobs = new PgPeriodicJobs(readDb);
  // Shorter than a second (0: no cache), every replica reads the capacity itself, as before.
  const shareCapacity = config.capabilities.refreshMs >= 1000;
  const deps: DriverDeps = {
    hosts: new PgHostStore(agentDb),
    hostChanges,
    health: new PgHealthStore(readDb),
    refresh: new PgRefreshStore(readDb),
    eventRetentionMs: config.eventRetentionDays * 24 * 3600_000,
    backend,
    locks: new PgVolumeLocks(db),
    store: new PgStore(readDb),
    clusterInfo: cacheOnSuccess(() => backend.clusterInfo()),
    logger: log,
    defaults: { replicas: config.defaultReplicas },
    capabilities: config.capabilities,
    sharedCapacity: shareCapacity ? sharedCapacity(periodicJobs, CAPACITY_JOB) : undefined,
    // On the agents' pool: the long poll reads the host's secrets with its list.
    hostSecrets,
    inbandAuth: config.inbandAuth,
  };
  // Periodic work once per fleet (docs/DECISIONS.md): each pass runs on the one replica that claims
  // it in `periodic_jobs`; /metrics says which passes this replica ran. Claims use the read pool.
  const fleetJobs: FleetJob[] = [
    // The history is pruned at start and then hourly: a single indexed range delete, cheap enough
    // not to need batching at the report rates of a few thousand attachments.
    {
      name: 'event-prune',
      periodMs: 3600_000,
      atStart: true,
      pass: async () => {
        const n = await pruneHealthEvents(deps);
        if (n > 0) log.info({ events: n }, 'pruned path-health history');
      },
    },
    // Portal refresh: every live attachment follows the backend (replica moves, nodes joining or
    // readdressed). Passes never overlap: the next one starts a full period after the last ended.
    {
      name: 'portal-refresh',
      periodMs: config.portalRefreshMs,
      pass: async () => {
        const r = await refreshPortals(deps);
        if (r.changed > 0 || r.failed.length > 0)
          log.info({ ...r, failed: r.failed.length }, 'portal refresh changed attachments');
      },
    },
    // Host secret rotations under way move on (a backend step retried, an agent's confirmation
    // noticed, the old secret retired) without anyone repeating the rotate call.
    ...(deps.hostSecrets
      ? [
          {
            name: 'secret-rotation',
            periodMs: config.portalRefreshMs,
            pass: async () => {
              const r = await advanceAllRotations(deps);
              if (r.advanced > 0 || r.failed > 0) log.info(r, 'host secret rotations advanced');
            },
          },
        ]
      : []),
    // The capacity figures of GET /v1/capabilities, read for every replica (see deps.sharedCapacity).
    ...(shareCapacity
      ? [{ name: CAPACITY_JOB, periodMs: config.capabilities.refreshMs, publish: true, pass: () => backend.capacity() }]
      : []),
  ];
  const observer = periodicJobMetrics(
    metrics.registry,
    fleetJobs.map((j) => j.name),
  );
  for (const job of fleetJobs) {
    const running = runFleetJob(periodicJobs, job, { logger: log, observer });
    stops.push(() => running.stop());
  }
  // Neither check touches the lock holders' pool; each is bounded in time by `readiness.ts`.
  const readiness: ReadinessCheck[] = [
    { name: 'database', check: async () => void (await readDb.raw('select 1')) },
    { name: 'backend', check: () => deps.backend.ping() },
  ];
  return { deps, db, metrics, readiness, backendDescription, databaseDescription };
}

export async function startService(config: ServiceConfig, log: Logger): Promise<RunningService> {
  const stops: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const stop of stops.reverse())
      await stop().catch((e) => log.warn({ err: (e as Error).message }, 'shutdown step failed'));
  };
  try {
    const { token, source } = await adminToken(config);
    const { deps, metrics, readiness, backendDescription, databaseDescription } = await composeDeps(config, log, stops);
    const app = await createApp({
      deps,
      metrics,
      auth: new Authenticator(token, deps, config.metricsToken),
      logger: log,
      readiness,
    });
    const plain = plainSecretsWarning(config);
    if (plain) log.warn({ setting: 'PORTALIS_TLS_CERT' }, plain);
    const { server, scheme, reloadTls } = await createServiceServer(app, config.tls, log);
    hardenServer(server, log);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    stops.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Idle keep-alive connections would hold close() open for their whole timeout.
          server.closeAllConnections();
        }),
    );
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : config.port;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    return {
      url: `${scheme}://${host}:${port}`,
      adminToken: token,
      tokenSource: source,
      backendDescription,
      databaseDescription,
      reloadTls,
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
