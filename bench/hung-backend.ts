/**
 * A hung backend: every LightOS request accepted and never answered (the simulator's `hangNext`),
 * 30 initialize_connection calls in flight against `portalis serve` (three times its main pool,
 * every connection held by a volume lock). Measures what needs no backend: get volume, list
 * attachments, the health matrix and `/metrics` (target 2 s), and `/readyz` (target 5 s; it is
 * bounded to 1.5 s per check). `test/integration/hung-backend.test.ts` checks the same with
 * deadlines a loaded machine cannot miss; the targets are measured here.
 */
import { randomUUID } from 'node:crypto';
import { SimClient, waitUntil } from '../test/support/sim-client.ts';
import { type Benchmark, type Figure, percentile, startSimAndService, TOKEN } from './support.ts';

const IN_FLIGHT = 30;

export const hungBackend: Benchmark = {
  name: 'hung-backend',
  description: `reads and /readyz with the backend hung and ${IN_FLIGHT} initialize calls in flight`,
  async run(ctx) {
    const rounds = ctx.quick ? 5 : 20;
    const stack = await startSimAndService(ctx.databaseUrl, 'hung');
    const sim = new SimClient(stack.simUrl);
    const abandon = new AbortController();
    try {
      const call = async (method: string, path: string, body?: unknown, signal?: AbortSignal) => {
        const r = await fetch(stack.url + path, {
          method,
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal,
        });
        return { status: r.status, text: await r.text() };
      };
      const connector = () => {
        const id = randomUUID();
        return { nqn: `nqn.2014-08.org.nvmexpress:uuid:${id}`, host: `hung-${id.slice(0, 8)}`, multipath: true };
      };
      const volumes: string[] = [];
      for (let i = 0; i <= IN_FLIGHT; i++) {
        const id = randomUUID();
        if ((await call('POST', '/v1/volumes', { id, size_gb: 1 })).status !== 201) throw new Error('create failed');
        volumes.push(id);
      }
      const attached = volumes.pop()!;
      const init = await call('POST', `/v1/volumes/${attached}/initialize_connection`, { connector: connector() });
      if (init.status !== 200) throw new Error(`initialize: ${init.status} ${init.text}`);

      await sim.faults({ hangNext: { count: 100_000, path: '/api/v2/' } });
      for (const v of volumes)
        void call('POST', `/v1/volumes/${v}/initialize_connection`, { connector: connector() }, abandon.signal).catch(
          () => undefined,
        );
      await waitUntil(async () => (await sim.faultsNow()).hung >= 10, {
        timeoutMs: 30_000,
        intervalMs: 50,
        what: 'the main pool held by hung initializes',
      });
      ctx.log('10 lock holders hung on the backend, 20 initializes queued for the pool');

      const targets: [string, string, string][] = [
        ['get volume', `/v1/volumes/${attached}`, '< 2000 ms'],
        ['list attachments', '/v1/attachments', '< 2000 ms'],
        ['health matrix', '/v1/health/multipath', '< 2000 ms'],
        ['/metrics', '/metrics', '< 2000 ms'],
        ['/readyz', '/readyz', '< 5000 ms'],
      ];
      const figures: Figure[] = [];
      for (const [name, path, target] of targets) {
        const ms: number[] = [];
        for (let i = 0; i < rounds; i++) {
          const t0 = performance.now();
          const r = await call('GET', path);
          ms.push(performance.now() - t0);
          const expected = path === '/readyz' ? 503 : 200;
          if (r.status !== expected) throw new Error(`${path}: ${r.status} ${r.text.slice(0, 200)}`);
        }
        ms.sort((a, b) => a - b);
        figures.push({ name: `${name}, median`, value: percentile(ms, 50), unit: 'ms' });
        figures.push({ name: `${name}, slowest of ${rounds}`, value: ms[ms.length - 1]!, unit: 'ms', target });
      }
      return figures;
    } finally {
      abandon.abort();
      await sim.clearFaults().catch(() => undefined);
      await stack.stop();
    }
  },
};
