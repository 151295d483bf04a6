/**
 * The portal refresh at cloud scale: one unchanged pass over 10,000 attached volumes (one
 * attachment each, `--volumes N` to change), by listing (what the service runs) against the
 * per-volume pass it replaced (each volume locked and read, `volumePaths`: two calls), as the
 * baseline. The simulator runs as its own process (`portalis sim`), so that the CPU figure is the
 * service's alone: the refresh runs in this process with the service's own parts (`composeDeps`),
 * and its CPU time is `process.cpuUsage()` across the pass. Backend calls are counted at the
 * simulator. Target (issue 22): at most ceil(volumes / 1000) + 2 calls and under 5 % of one core
 * at the default 30 s period.
 */
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../src/config.ts';
import type { DriverDeps } from '../src/driver/deps.ts';
import { refreshPortals, refreshVolumePortals } from '../src/driver/refresh-portals.ts';
import { composeDeps } from '../src/server/service.ts';
import { silentLogger } from '../src/shared/logger.ts';
import { recordAttached, recordVolume } from '../test/support/records.ts';
import { SimClient, waitUntil } from '../test/support/sim-client.ts';
import { type Benchmark, type Figure, load, median, scratchDatabase, startProgram } from './support.ts';

const PERIOD_MS = 30_000;
const PAGE = 1000;
const LIST = 'GET /api/v2/projects/default/volumes';

/** The pass the listing replaced: every attached volume locked and read on its own (main before issue 22). */
async function perVolumePass(deps: DriverDeps): Promise<number> {
  const all = await deps.store.listAttachments({ status: 'attached' });
  const { subsystemNqn } = await deps.clusterInfo();
  let changed = 0;
  for (const volumeId of new Set(all.map((a) => a.volumeId)))
    changed += await refreshVolumePortals(deps, volumeId, subsystemNqn);
  return changed;
}

/** Wall ms, CPU ms of this process, backend calls (the capacity job's reads left out). */
async function measure(sim: SimClient, pass: () => Promise<unknown>) {
  await sim.resetRequests();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await pass();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const { byRoute } = await sim.requests();
  delete byRoute['GET /api/v2/cluster'];
  const calls = Object.values(byRoute).reduce((a, b) => a + b, 0);
  return { wallMs, cpuMs: (cpu.user + cpu.system) / 1000, calls, byRoute };
}

export const refresh: Benchmark = {
  name: 'refresh',
  description: 'an unchanged portal-refresh pass over N attached volumes: by listing vs per volume',
  async run(ctx) {
    const volumes = Number(ctx.options.volumes ?? (ctx.quick ? 1000 : 10_000));
    const rounds = ctx.quick ? 1 : 3;
    const db = await scratchDatabase(ctx.databaseUrl, 'refresh');
    const simProc = startProgram(
      ['sim'],
      { PORTALIS_SIM_PORT: '0', PORTALIS_SIM_NODES: '3' },
      /listening on (http:\S+)/,
    );
    const stops: (() => Promise<void>)[] = [];
    try {
      const simUrl = (await simProc.ready).match[1]!;
      const sim = new SimClient(simUrl);
      const config = loadConfig({
        DATABASE_URL: db.url,
        PORTALIS_BACKEND: 'lightos',
        PORTALIS_LIGHTOS_ENDPOINTS: simUrl,
        // The fleet job stays out of the way; the passes measured are run here.
        PORTALIS_PORTAL_REFRESH_MS: '86400000',
      });
      const { deps } = await composeDeps(config, silentLogger, stops);

      ctx.log(`creating ${volumes} volumes in the simulator`);
      const uuids: string[] = new Array(volumes);
      await load(volumes, 16, async (i) => {
        const r = await sim.request('POST', '/api/v2/projects/default/volumes', {
          name: `refresh-${i}`,
          size: '1 gib',
          replicaCount: 2,
        });
        if (r.status !== 200) throw new Error(`create: ${r.status} ${JSON.stringify(r.body)}`);
        uuids[i] = r.body.UUID;
      });
      await waitUntil(
        async () => (await sim.state()).volumes.every((v: { state: string }) => v.state === 'Available'),
        {
          timeoutMs: 300_000,
          intervalMs: 500,
          what: 'every volume Available',
        },
      );
      const { subsystemNqn } = await deps.clusterInfo();
      const paths = await deps.backend.listVolumePaths(uuids);
      if (paths.size !== volumes) throw new Error(`listed ${paths.size} of ${volumes} volumes`);

      ctx.log(`recording ${volumes} attached volumes, one host each`);
      await load(volumes, 8, async (i) => {
        const backendUuid = uuids[i]!;
        const { id: volumeId } = await recordVolume(deps.store, { backendUuid, replicas: 2, multiattach: false });
        const nqn = `nqn.2014-08.org.nvmexpress:uuid:${randomUUID()}`;
        await recordAttached(deps.store, {
          volumeId,
          backendUuid,
          subsystemNqn,
          paths: paths.get(backendUuid)!,
          hostNqn: nqn,
          hostName: `host-${i}`,
          connectedBy: 'host',
        });
      });

      // One pass each first: the pools' connections and the JIT warmed alike.
      await refreshPortals(deps);
      const listing: Awaited<ReturnType<typeof measure>>[] = [];
      for (let r = 0; r < rounds; r++) {
        const m = await measure(sim, async () => {
          const res = await refreshPortals(deps);
          if (res.changed !== 0 || res.locked !== 0 || res.failed.length > 0 || res.volumes !== volumes)
            throw new Error(
              `an unchanged pass changed something: ${JSON.stringify({ ...res, failed: res.failed.length })}`,
            );
        });
        listing.push(m);
        ctx.log(
          `by listing: ${m.wallMs.toFixed(0)} ms, CPU ${m.cpuMs.toFixed(0)} ms, calls ${JSON.stringify(m.byRoute)}`,
        );
      }
      // Where a pass's time goes: its two reads alone (the rest is the comparison in memory).
      for (const [part, read] of [
        ['the attachments query', () => deps.refresh.attachedForRefresh()],
        ['the listing', () => deps.backend.listVolumePaths(uuids)],
      ] as const) {
        const m = await measure(sim, read);
        ctx.log(`${part} alone: ${m.wallMs.toFixed(0)} ms, CPU ${m.cpuMs.toFixed(0)} ms`);
      }
      ctx.log('the per-volume baseline (one round)');
      const old = await measure(sim, async () => {
        if ((await perVolumePass(deps)) !== 0) throw new Error('the baseline pass changed something');
      });
      ctx.log(`per volume: ${old.wallMs.toFixed(0)} ms, CPU ${old.cpuMs.toFixed(0)} ms, calls ${old.calls}`);

      const wall = median(listing.map((m) => m.wallMs));
      const cpu = median(listing.map((m) => m.cpuMs));
      const calls = Math.max(...listing.map((m) => m.calls));
      // Passes never overlap: the next starts a period after the last ended, so a pass's CPU is
      // spread over its own wall time plus the period.
      const share = (cpuMs: number, wallMs: number) => (cpuMs / (wallMs + PERIOD_MS)) * 100;
      const figures: Figure[] = [
        {
          name: `unchanged pass, ${volumes} volumes: wall`,
          value: wall,
          unit: 'ms',
          baseline: { name: 'per volume', value: old.wallMs },
        },
        {
          name: 'unchanged pass: service CPU',
          value: cpu,
          unit: 'ms',
          baseline: { name: 'per volume', value: old.cpuMs },
        },
        {
          name: 'unchanged pass: backend calls',
          value: calls,
          unit: 'calls',
          baseline: { name: 'per volume', value: old.calls },
          target: `≤ ${Math.ceil(volumes / PAGE) + 2}`,
        },
        {
          name: `CPU share of one core at the ${PERIOD_MS / 1000} s period`,
          value: share(cpu, wall),
          unit: '%',
          baseline: { name: 'per volume', value: share(old.cpuMs, old.wallMs) },
          target: '< 5 %',
        },
      ];
      if (!listing.every((m) => m.byRoute[LIST] === Math.ceil(volumes / PAGE)))
        ctx.log(`note: pages per pass ${listing.map((m) => m.byRoute[LIST]).join(', ')}`);
      return figures;
    } finally {
      for (const s of stops.reverse()) await s().catch(() => undefined);
      await simProc.stop();
      await db.drop();
    }
  },
};
