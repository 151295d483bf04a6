/**
 * Fan-out: many agents long-polling `portalis serve` over real HTTP (all from this process),
 * while initialize_connection runs at concurrency 16 for their hosts. Measures, for each
 * attachment, initialize answered → its host's poll answered with it; each service process's
 * resident memory with every poller parked; and polls answered without a change of their host (a
 * poll that waits 120 s and comes back early with the same version), which must be none.
 * `--hosts N` (2,000; 200 with `--quick`) pollers, `--replicas N` (1) service processes on one
 * database behind a round-robin client: each request, poll or initialize, goes to the next replica,
 * so a poll is woken by a change made through another replica (PostgreSQL's NOTIFY between them).
 */
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import { roundRobin, startFleet } from './fleet.ts';
import { type Benchmark, type Figure, gate, load, percentile, TOKEN } from './support.ts';

/** The pollers' wait: long enough that none comes back during the RSS window below. */
const WAIT_S = 120;
const SETTLE_MS = 20_000;
/** Pollers making their first request at once. */
const STARTING = 256;

function rssMb(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) / 1024;
}

export const fanout: Benchmark = {
  name: 'fanout',
  description: 'long-polling agents woken by initialize_connection at concurrency 16',
  async run(ctx) {
    const pollers = Number(ctx.options.hosts ?? (ctx.quick ? 200 : 2000));
    const replicaCount = Number(ctx.options.replicas ?? 1);
    const attaches = ctx.quick ? 64 : 320;
    const fleet = await startFleet(ctx.databaseUrl, 'fanout', replicaCount);
    const stop = new AbortController();
    // Every poll's fetch listens on this one signal (two or three at a time per poller).
    setMaxListeners(pollers * 4, stop.signal);
    try {
      const call = roundRobin(fleet.urls);
      const hosts: { nqn: string; token: string }[] = [];
      await load(pollers, 16, async (i) => {
        const nqn = `nqn.2014-08.org.nvmexpress:uuid:${randomUUID()}`;
        const r = await call('POST', '/v1/hosts', TOKEN, { nqn, name: `fanout-${i}` });
        hosts[i] = { nqn, token: r.token as string };
      });
      ctx.log(`${pollers} hosts issued`);
      const volumes: string[] = [];
      for (let i = 0; i < 32; i++) {
        const v = await call('POST', '/v1/volumes', TOKEN, { id: randomUUID(), size_gb: 1, multiattach: true });
        volumes.push(v.id as string);
      }

      const starting = gate(STARTING);
      const seenAt = new Map<string, number>();
      let spurious = 0;
      let failed = 0;
      let parked = 0;
      const poller = async (h: { token: string }) => {
        const list = (since: number | null, wait: number) =>
          call(
            'GET',
            `/v1/agent/attachments?${since === null ? '' : `since=${since}&`}wait=${wait}`,
            h.token,
            undefined,
            stop.signal,
          );
        // Agents coming up after a power loss do not all connect in the same millisecond: at most
        // STARTING first requests in flight. All 10,000 at once left a replica's event loop too far
        // behind to read some requests within Node's 60 s headersTimeout (408 request_timeout).
        await starting.acquire();
        let since: number | undefined;
        try {
          while (since === undefined && !stop.signal.aborted)
            since = await list(null, 0).then(
              (r) => r.version as number,
              () => void failed++,
            );
        } finally {
          starting.release();
        }
        if (since === undefined) return;
        parked++;
        while (!stop.signal.aborted) {
          const t0 = performance.now();
          // A poll that fails (a connection reset twice over on this overloaded machine) is sent
          // again, as the agent's loop does; `failed` counts them.
          const r: Record<string, unknown> | null = await list(since, WAIT_S).catch((e: unknown) => {
            if (stop.signal.aborted) throw e;
            failed++;
            return null;
          });
          if (!r) continue;
          const at = performance.now();
          if (r.version === since) {
            if (at - t0 < (WAIT_S - 1) * 1000) spurious++;
            continue;
          }
          since = r.version as number;
          for (const a of r.attachments as { id: string }[]) if (!seenAt.has(a.id)) seenAt.set(a.id, at);
        }
      };
      // A poller that fails is counted, never left as an unhandled rejection: that ends this
      // process before the `finally` below stops the replicas and the simulator.
      const running = hosts.map((h) => poller(h).catch(() => void (stop.signal.aborted || failed++)));
      // 120 s, or 30 ms per poller for large fleets on this shared machine.
      const deadline = Date.now() + Math.max(120_000, pollers * 30);
      while (parked < pollers && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      // The first polls answered; the long polls that follow must all be parked (their token
      // checks and reads done) before the measurement: wait until the service is idle, under 10 %
      // of a core over half a second. At 2,000 pollers a fixed second was not enough, and the
      // attachments then queued behind the parking polls' reads.
      const pids = fleet.replicas.map((r) => r.child.pid!);
      for (let cpu = fleet.cpuMs(); Date.now() < deadline; ) {
        await new Promise((r) => setTimeout(r, 500));
        const now = fleet.cpuMs();
        if (now - cpu < 50 * replicaCount) break;
        cpu = now;
      }
      const idleRss = Math.max(...pids.map(rssMb));
      ctx.log(`${parked} pollers parked, service RSS ${pids.map((p) => rssMb(p).toFixed(0)).join(' / ')} MB`);
      // And after a measurement window of idleness: V8's memory reducer hands the parking burst's
      // garbage back some 10 s after allocation stops (src/heap/memory-reducer.cc), so this is the
      // resident memory a fleet of parked agents keeps; the first figure is the burst's peak.
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const settledRss = Math.max(...pids.map(rssMb));
      ctx.log(`service RSS ${pids.map((p) => rssMb(p).toFixed(0)).join(' / ')} MB after ${SETTLE_MS / 1000} s idle`);

      const answeredAt = new Map<string, number>();
      const tokenOf = new Map<string, string>();
      const initRun = await load(attaches, 16, async (i) => {
        const h = hosts[i % pollers]!;
        const r = await call('POST', `/v1/volumes/${volumes[i % volumes.length]}/initialize_connection`, TOKEN, {
          connector: { nqn: h.nqn, host: `fanout-${i % pollers}`, multipath: true, nvme_native_multipath: true },
        });
        answeredAt.set(r.attachment_id as string, performance.now());
        tokenOf.set(r.attachment_id as string, h.token);
      });
      while ([...answeredAt.keys()].some((id) => !seenAt.has(id)) && Date.now() < deadline + 30_000)
        await new Promise((r) => setTimeout(r, 20));
      const delays = [...answeredAt].map(([id, t]) => Math.max(0, (seenAt.get(id) ?? Number.POSITIVE_INFINITY) - t));
      delays.sort((a, b) => a - b);
      const missed = delays.filter((d) => !Number.isFinite(d)).length;
      const reports = await reportLatencies(call, tokenOf);
      stop.abort();
      await Promise.allSettled(running);
      const rssOf = replicaCount === 1 ? 'service RSS' : `service RSS, largest of ${replicaCount} replicas`;
      return [
        { name: `poll answered after initialize, p50 (${pollers} pollers)`, value: percentile(delays, 50), unit: 'ms' },
        { name: `poll answered after initialize, p99`, value: percentile(delays, 99), unit: 'ms', target: '≤ 50 ms' },
        { name: 'attachments never seen by their poller', value: missed, unit: '' },
        { name: 'initialize_connection at concurrency 16', value: attaches / initRun.seconds, unit: '/s' },
        { name: `${rssOf}, ${pollers} pollers just parked`, value: idleRss, unit: 'MB' },
        {
          name: `${rssOf}, ${pollers} idle pollers (${SETTLE_MS / 1000} s later)`,
          value: settledRss,
          unit: 'MB',
          target: '≤ 200 MB',
        },
        { name: 'agent report, concurrency 1: p50', value: percentile(reports, 50), unit: 'ms' },
        { name: 'polls woken without a change of their host', value: spurious, unit: '', target: '0' },
        { name: 'requests sent again on a new connection (reset or closed)', value: call.reconnected, unit: '' },
        { name: 'polls failed and sent again', value: failed, unit: '' },
      ] satisfies Figure[];
    } finally {
      stop.abort();
      await fleet.stop();
    }
  },
};

type Call = (method: string, path: string, token: string, body?: unknown) => Promise<Record<string, unknown>>;

/**
 * What one agent report costs through the service here, natively (the kernel benchmark's guest
 * pays the same path under emulation): `PUT /v1/agent/attachments/{id}/report` with each
 * attachment's own host token, one at a time. Each attachment reports once unmeasured (its first
 * report is always a change), then twice measured: a changed path state and health (a history
 * entry written), then the same again (nothing but the report's columns), so half and half.
 */
async function reportLatencies(call: Call, tokenOf: Map<string, string>): Promise<number[]> {
  const ids = [...tokenOf.keys()];
  const body = (i: number) => ({
    state: 'connected',
    device_path: '/dev/nvme0n1',
    size_bytes: 2 ** 30,
    health: i % 2 ? 'degraded' : 'optimal',
    paths: [
      {
        controller: 'nvme0',
        address: '192.0.2.1',
        port: 4420,
        transport: 'tcp',
        state: 'live',
        ana_state: 'optimized',
      },
      {
        controller: 'nvme1',
        address: '192.0.2.2',
        port: 4420,
        transport: 'tcp',
        state: i % 2 ? 'connecting' : 'live',
        ana_state: 'non-optimized',
      },
    ],
    error: null,
  });
  const put = (id: string, changed: boolean) =>
    call('PUT', `/v1/agent/attachments/${id}/report`, tokenOf.get(id)!, body(changed ? 1 : 0));
  for (const id of ids) await put(id, false);
  const r = await load(ids.length * 2, 1, async (i) => void (await put(ids[i % ids.length]!, true)));
  return r.latencies;
}
