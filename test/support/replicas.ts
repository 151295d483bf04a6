import supertest from 'supertest';
import { loadConfig } from '../../src/config.ts';
import type { DriverDeps } from '../../src/driver/deps.ts';
import { createApp } from '../../src/server/app.ts';
import { Authenticator } from '../../src/server/auth.ts';
import type { ServiceMetrics } from '../../src/server/metrics.ts';
import { composeDeps } from '../../src/server/service.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { type SimServer, startSimServer } from '../../src/sim/server.ts';
import { createTestDatabase } from './db.ts';

export interface Replica {
  deps: DriverDeps;
  metrics: ServiceMetrics;
  /** The replica's app, in process; `token` is its admin token. */
  app: supertest.Agent;
}

/**
 * `count` service processes on one fresh database and one 3-node simulator, each composed as
 * `portalis serve` composes itself (`composeDeps`: its own pools, its periodic jobs), so that the
 * only thing they share is PostgreSQL, as real processes would. `env` adds service settings.
 */
export async function startReplicas(
  count: number,
  token: string,
  env: Record<string, string> = {},
): Promise<{ sim: SimServer; replicas: Replica[]; close: () => Promise<void> }> {
  const stops: (() => Promise<void>)[] = [];
  const database = await createTestDatabase();
  const sim = await startSimServer({ port: 0, nodes: 3 });
  const close = async () => {
    for (const s of stops.reverse()) await s();
    await sim.close();
    await database.drop();
  };
  try {
    const config = loadConfig({
      DATABASE_URL: database.url,
      PORTALIS_SIM_URL: sim.url,
      PORTALIS_LIGHTOS_POLL_INTERVAL_MS: '20',
      ...env,
    });
    const replicas: Replica[] = [];
    for (let i = 0; i < count; i++) {
      const { deps, metrics } = await composeDeps(config, silentLogger, stops);
      const auth = new Authenticator(token, deps);
      const app = supertest.agent(await createApp({ deps, metrics, auth, logger: silentLogger, readiness: [] }));
      replicas.push({ deps, metrics, app });
    }
    return { sim, replicas, close };
  } catch (e) {
    await close();
    throw e;
  }
}
