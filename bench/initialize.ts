/**
 * initialize_connection through `portalis serve` (lightos adapter) against `portalis sim`, both
 * as their own processes, against the backend calls one initialize makes (the adapter's
 * `attachAccess`: the grant with the node list read beside it, as src/driver/initialize-connection.ts
 * calls it), made directly by the same adapter, so with the same axios client and keep-alive agent.
 */
import { randomUUID } from 'node:crypto';
import { LightosBackend } from '../src/backend/lightos/index.ts';
import { loadConfig } from '../src/config.ts';
import { initializeConnection } from '../src/driver/initialize-connection.ts';
import type { Connector } from '../src/driver/model.ts';
import { composeDeps } from '../src/server/service.ts';
import { silentLogger } from '../src/shared/logger.ts';
import {
  type Benchmark,
  type Figure,
  load,
  machineCpuMs,
  percentile,
  processCpuMs,
  startSimAndService,
  TOKEN,
} from './support.ts';

const CONCURRENCY = [1, 16, 64];

function connector(i: number): Record<string, unknown> {
  const id = randomUUID();
  return {
    nqn: `nqn.2014-08.org.nvmexpress:uuid:${id}`,
    host: `bench-${i}`,
    nvme_hostid: id,
    ip: '192.0.2.10',
    host_ips: ['192.0.2.10'],
    multipath: true,
    enforce_multipath: false,
    nvme_native_multipath: true,
    platform: 'x86_64',
    os_type: 'linux',
  };
}

export const initialize: Benchmark = {
  name: 'initialize',
  description: 'initialize_connection via portalis serve + portalis sim, against the raw backend calls',
  async run(ctx) {
    // Distinct pairs: a new host per call on multiattach volumes (one volume, many hosts).
    const perRound = ctx.quick ? 64 : 640;
    const volumeCount = 64;
    const stack = await startSimAndService(ctx.databaseUrl, 'initialize');
    const { simUrl } = stack;
    const backend = new LightosBackend({ endpoints: [simUrl], project: 'default', pollIntervalMs: 100 });
    try {
      const { url } = stack;
      const call = async (method: string, path: string, body?: unknown) => {
        const r = await fetch(url + path, {
          method,
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await r.text();
        if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text}`);
        return JSON.parse(text) as Record<string, unknown>;
      };
      const volumes: { id: string; uuid: string }[] = [];
      for (let i = 0; i < volumeCount; i++) {
        const v = await call('POST', '/v1/volumes', { id: randomUUID(), size_gb: 1, replicas: 3, multiattach: true });
        volumes.push({ id: v.id as string, uuid: v.backend_uuid as string });
      }
      const init = (volumeId: string, conn: Record<string, unknown>) =>
        call('POST', `/v1/volumes/${volumeId}/initialize_connection`, { connector: conn });
      const raw = async (uuid: string, nqn: string) => void (await backend.attachAccess(uuid, nqn));
      // Warm both paths (connections, JIT) before measuring.
      await load(32, 8, (i) => raw(volumes[i % volumeCount]!.uuid, `nqn.warm:${i}`));
      await load(32, 8, async (i) => void (await init(volumes[i % volumeCount]!.id, connector(i))));

      const figures: Figure[] = [];
      let hostSeq = 0;
      for (const mode of ['distinct', 'repeated'] as const) {
        // Repeated: the same (volume, host) pairs again and again (a retried call, idempotent),
        // each attached once before, so that no measured call is a pair's first (with --quick a
        // round has as many calls as there are pairs).
        const fixed = Array.from({ length: volumeCount }, (_, i) => connector(i));
        if (mode === 'repeated') await load(volumeCount, 8, async (i) => void (await init(volumes[i]!.id, fixed[i]!)));
        for (const c of CONCURRENCY) {
          const pick = (i: number) => {
            const v = volumes[i % volumeCount]!;
            const conn = mode === 'distinct' ? connector(hostSeq++) : fixed[i % volumeCount]!;
            return { v, conn };
          };
          const machine0 = machineCpuMs();
          const base = await load(perRound, c, (i) => {
            const { v, conn } = pick(i);
            return raw(v.uuid, conn.nqn as string);
          });
          const machine1 = machineCpuMs();
          const cpu0 = processCpuMs(stack.service.child.pid!);
          const svc = await load(perRound, c, async (i) => {
            const { v, conn } = pick(i);
            await init(v.id, conn);
          });
          const cpuPerCall = (processCpuMs(stack.service.child.pid!) - cpu0) / perRound;
          // Everything (client, service, simulator, PostgreSQL) shares this machine's CPUs: at
          // concurrency 64 the throughput ratio is about the inverse ratio of these two.
          const machinePerCall = { raw: (machine1 - machine0) / perRound, svc: (machineCpuMs() - machine1) / perRound };
          const label = `${mode}, concurrency ${c}`;
          const p = (r: typeof svc, q: number) => percentile(r.latencies, q);
          figures.push(
            {
              name: `${label}: requests/s`,
              value: perRound / svc.seconds,
              unit: '/s',
              baseline: { name: 'raw backend calls', value: perRound / base.seconds },
              ...(c === 64 ? { target: '≥ 0.8 × baseline' } : {}),
            },
            {
              name: `${label}: p50`,
              value: p(svc, 50),
              unit: 'ms',
              baseline: { name: 'raw backend calls', value: p(base, 50) },
              ...(c === 1 ? { target: '≤ baseline + 2 ms' } : {}),
            },
            {
              name: `${label}: p99`,
              value: p(svc, 99),
              unit: 'ms',
              baseline: { name: 'raw backend calls', value: p(base, 99) },
            },
            { name: `${label}: service CPU per call`, value: cpuPerCall, unit: 'ms' },
            {
              name: `${label}: machine CPU per call`,
              value: machinePerCall.svc,
              unit: 'ms',
              baseline: { name: 'raw backend calls', value: machinePerCall.raw },
            },
          );
          ctx.log(`${label} done`);
        }
      }
      // The floor of any call through the service on this machine: its cheapest authenticated one
      // (GET /v1/volumes/{id}: the HTTP hop, express, openapi-backend, the token check and one
      // indexed read), which no initialize can go below.
      const floor = await load(
        perRound,
        1,
        async (i) => void (await call('GET', `/v1/volumes/${volumes[i % volumeCount]!.id}`)),
      );
      figures.push({
        name: 'floor: GET /v1/volumes/{id}, concurrency 1: p50',
        value: percentile(floor.latencies, 50),
        unit: 'ms',
      });
      figures.push(...(await roundTrips(stack.databaseUrl, simUrl, volumes)));
      return figures;
    } finally {
      await stack.stop();
    }
  },
};

/**
 * The database round trips of one initialize_connection: the service's own parts (composeDeps)
 * in this process, every query knex sends counted (BEGIN, the advisory lock and COMMIT included).
 */
async function roundTrips(databaseUrl: string, simUrl: string, volumes: { id: string }[]): Promise<Figure[]> {
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    PORTALIS_ADMIN_TOKEN: TOKEN,
    PORTALIS_BACKEND: 'lightos',
    PORTALIS_LIGHTOS_ENDPOINTS: simUrl,
  });
  const stops: (() => Promise<void>)[] = [];
  try {
    const { deps, db } = await composeDeps(config, silentLogger, stops);
    let queries = 0;
    db.on('query', () => void queries++);
    const calls = 20;
    const count = async (pair: (i: number) => { volumeId: string; connector: Connector }) => {
      queries = 0;
      for (let i = 0; i < calls; i++) await initializeConnection(deps, pair(i));
      return queries / calls;
    };
    const fixed = connector(0) as unknown as Connector;
    const distinct = await count((i) => ({
      volumeId: volumes[i % volumes.length]!.id,
      connector: connector(i) as unknown as Connector,
    }));
    const repeated = await count(() => ({ volumeId: volumes[0]!.id, connector: fixed }));
    return [
      { name: 'database round trips per call, distinct', value: distinct, unit: 'queries' },
      { name: 'database round trips per call, repeated', value: repeated, unit: 'queries' },
    ];
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}
