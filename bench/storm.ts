/**
 * Boot storm (issue 22 item 3): after a cloud-wide power loss every host re-attaches its volumes.
 * `hosts` × `volumes` initialize_connection calls through three `portalis serve` replicas behind a
 * round-robin client, at the concurrency OpenStack produces (docs/performance.md, "Boot storm"):
 * cinder-volume runs each RPC in one of its 64 greenthreads (oslo.messaging's
 * `executor_thread_pool_size`), and nova-compute's start-up goes through a host's instances one
 * after another, so a host's volumes come one at a time. Two rounds: the first attach of every pair (new), then the
 * re-attach after the power loss (the same pairs again); each against the backend calls one
 * initialize makes (the adapter's `attachAccess`), issued raw from this process at the same
 * concurrency for a host NQN of their own.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { LightosBackend } from '../src/backend/lightos/index.ts';
import { roundRobin, startFleet } from './fleet.ts';
import { type Benchmark, type Figure, gate, load, machineCpuMs, percentile, ROOT, TOKEN } from './support.ts';

/** cinder-volume's greenthreads per service (oslo.messaging `executor_thread_pool_size`, default 64). */
const CINDER_GREENTHREADS = 64;

/**
 * Each host runs its volumes one after another; at most `concurrency` calls are in flight in all
 * (waiters served first come, first served). The latency of each call in ms, and the wall time.
 */
async function storm(
  hosts: number,
  perHost: number,
  concurrency: number,
  fn: (host: number, volume: number) => Promise<void>,
): Promise<{ latencies: number[]; seconds: number }> {
  const { acquire, release } = gate(concurrency);
  const latencies: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: hosts }, async (_, h) => {
      for (let v = 0; v < perHost; v++) {
        await acquire();
        const t = performance.now();
        try {
          await fn(h, v);
        } finally {
          release();
        }
        latencies.push(performance.now() - t);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return { latencies, seconds: (performance.now() - t0) / 1000 };
}

function int(options: Record<string, string>, name: string, fallback: number): number {
  const v = options[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} ${v}: a positive integer, please`);
  return n;
}

export const stormBench: Benchmark = {
  name: 'storm',
  description: 'boot storm: every host re-attaches its volumes through three replicas, against the raw backend calls',
  async run(ctx) {
    const hosts = int(ctx.options, 'hosts', ctx.quick ? 100 : 2000);
    const perHost = int(ctx.options, 'volumes', 10);
    const replicaCount = int(ctx.options, 'replicas', 3);
    const concurrency = int(ctx.options, 'concurrency', CINDER_GREENTHREADS);
    const calls = hosts * perHost;
    // `--cpu-prof <dir>`: the first replica writes a V8 CPU profile there when it stops.
    const profDir = ctx.options['cpu-prof'] ? path.resolve(ROOT, ctx.options['cpu-prof']) : undefined;
    if (profDir) mkdirSync(profDir, { recursive: true });
    const fleet = await startFleet(ctx.databaseUrl, 'storm', replicaCount, {
      // The volumes' creation waits for the backend's state polls: short ones keep the set-up short.
      // The portal refresh is issue 22 item 2's benchmark; here it would add a pass over every
      // attached volume in the middle of a round, so its period is an hour.
      env: { PORTALIS_LIGHTOS_POLL_INTERVAL_MS: '20', PORTALIS_PORTAL_REFRESH_MS: '3600000' },
      ...(profDir ? { nodeOptions: { 0: `--cpu-prof --cpu-prof-dir=${profDir}` } } : {}),
    });
    const backend = new LightosBackend({ endpoints: [fleet.simUrl], project: 'default', pollIntervalMs: 20 });
    try {
      const call = roundRobin(fleet.urls, { retries: 3, retryMs: 1000 });
      const volumes: { id: string; uuid: string }[] = [];
      const setup = await load(calls, concurrency, async (i) => {
        const v = await call('POST', '/v1/volumes', TOKEN, { id: randomUUID(), size_gb: 1, replicas: 3 });
        volumes[i] = { id: v.id as string, uuid: v.backend_uuid as string };
      });
      ctx.log(`${calls} volumes created in ${setup.seconds.toFixed(0)} s`);
      const nqn = (h: number) =>
        `nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-${String(h).padStart(12, '0')}`;
      const rawNqn = (h: number) =>
        `nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-9000-${String(h).padStart(12, '0')}`;
      const connector = (h: number) => ({
        nqn: nqn(h),
        host: `storm-${h}`,
        ip: '192.0.2.10',
        multipath: true,
        nvme_native_multipath: true,
        platform: 'x86_64',
        os_type: 'linux',
      });
      const through = (h: number, v: number) =>
        call('POST', `/v1/volumes/${volumes[h * perHost + v]!.id}/initialize_connection`, TOKEN, {
          connector: connector(h),
        }).then(() => undefined);
      const raw = (h: number, v: number) =>
        backend.attachAccess(volumes[h * perHost + v]!.uuid, rawNqn(h)).then(() => undefined);

      const figures: Figure[] = [];
      let retried = call.retried; // the set-up's are not counted
      for (const round of ['new', 're-attach'] as const) {
        const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
        const q0 = sum(await fleet.queries());
        const cpu0 = fleet.cpuMs();
        const m0 = machineCpuMs();
        const svc = await storm(hosts, perHost, concurrency, through);
        const m1 = machineCpuMs();
        const cpu = (fleet.cpuMs() - cpu0) / calls;
        const queries = (sum(await fleet.queries()) - q0) / calls;
        ctx.log(`${round}: through the service in ${svc.seconds.toFixed(0)} s`);
        const retriedNow = call.retried;
        const m2 = machineCpuMs();
        const base = await storm(hosts, perHost, concurrency, raw);
        const m3 = machineCpuMs();
        ctx.log(`${round}: raw in ${base.seconds.toFixed(0)} s`);
        const label = `${round} (${hosts} hosts × ${perHost}, concurrency ${concurrency})`;
        const rawName = 'raw backend calls';
        figures.push(
          {
            name: `${label}: wall time`,
            value: svc.seconds,
            unit: 's',
            baseline: { name: rawName, value: base.seconds },
          },
          {
            name: `${round}: calls/s`,
            value: calls / svc.seconds,
            unit: '/s',
            baseline: { name: rawName, value: calls / base.seconds },
          },
          {
            name: `${round}: throughput ratio to raw`,
            value: base.seconds / svc.seconds,
            unit: '×',
            ...(round === 'new' ? { target: '≥ 0.8' } : {}),
          },
          {
            name: `${round}: p50`,
            value: percentile(svc.latencies, 50),
            unit: 'ms',
            baseline: { name: rawName, value: percentile(base.latencies, 50) },
          },
          {
            name: `${round}: p99`,
            value: percentile(svc.latencies, 99),
            unit: 'ms',
            baseline: { name: rawName, value: percentile(base.latencies, 99) },
          },
          {
            name: `${round}: service CPU per call (${replicaCount} replicas)`,
            value: cpu,
            unit: 'ms',
            ...(round === 'new' ? { target: '≤ 6 ms' } : {}),
          },
          { name: `${round}: database round trips per call`, value: queries, unit: 'queries' },
          { name: `${round}: calls retried after a 502/503/504 or busy`, value: retriedNow - retried, unit: '' },
          {
            name: `${round}: machine CPU per call`,
            value: (m1 - m0) / calls,
            unit: 'ms',
            baseline: { name: rawName, value: (m3 - m2) / calls },
          },
        );
        retried = retriedNow;
      }
      return figures;
    } finally {
      await fleet.stop();
    }
  },
};
