/**
 * In-band authentication's cost on the service (`portalis serve` over real HTTP, the simulator
 * as LightOS): a host's registration with its secrets generated, sealed and set at the backend,
 * against the same registration with auth off (a second service, run after the first); a
 * rotation of a host without attachments from the call to `idle` (two backend calls, four
 * steps); and the agent's poll answered with its secrets (one more read, two AES-GCM opens)
 * against the same poll with auth off.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { type Benchmark, type Figure, load, percentile, startSimAndService, TOKEN } from './support.ts';

interface Timings {
  register: number[];
  poll: number[];
  rotate: number[];
}

async function measure(
  databaseUrl: string,
  name: string,
  hosts: number,
  env: Record<string, string>,
): Promise<Timings> {
  const stack = await startSimAndService(databaseUrl, name, env);
  try {
    const call = async (method: string, path: string, token: string, body?: unknown) => {
      const started = performance.now();
      const r = await fetch(stack.url + path, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text}`);
      return { ms: performance.now() - started, body: JSON.parse(text) as Record<string, unknown> };
    };
    const t: Timings = { register: [], poll: [], rotate: [] };
    const issued: { nqn: string; token: string }[] = [];
    await load(hosts, 8, async (i) => {
      const nqn = `nqn.2014-08.org.nvmexpress:uuid:${randomUUID()}`;
      const r = await call('POST', '/v1/hosts', TOKEN, { nqn, name: `bench-${i}` });
      t.register.push(r.ms);
      issued[i] = { nqn, token: r.body.token as string };
    });
    await load(hosts, 8, async (i) => {
      const r = await call('GET', '/v1/agent/attachments?wait=0', issued[i]!.token);
      if (env.PORTALIS_INBAND_AUTH && !r.body.dhchap) throw new Error('a poll without the host secrets');
      t.poll.push(r.ms);
    });
    if (env.PORTALIS_INBAND_AUTH)
      await load(hosts, 8, async (i) => {
        const r = await call('POST', `/v1/hosts/${encodeURIComponent(issued[i]!.nqn)}/secrets/rotate`, TOKEN);
        if (r.body.step !== 'idle') throw new Error(`rotation left at ${String(r.body.step)}`);
        t.rotate.push(r.ms);
      });
    for (const list of Object.values(t) as number[][]) list.sort((a, b) => a - b);
    return t;
  } finally {
    await stack.stop();
  }
}

export const hostSecrets: Benchmark = {
  name: 'host-secrets',
  description: 'host registration, agent poll and secret rotation with in-band authentication on and off',
  async run(ctx) {
    const hosts = ctx.quick ? 100 : 1000;
    const on = await measure(ctx.databaseUrl, 'secrets_on', hosts, {
      PORTALIS_INBAND_AUTH: 'required',
      PORTALIS_SECRETS_KEY: randomBytes(32).toString('base64'),
    });
    ctx.log(`${hosts} hosts with auth on`);
    const off = await measure(ctx.databaseUrl, 'secrets_off', hosts, {});
    ctx.log(`${hosts} hosts with auth off`);
    const figures: Figure[] = [];
    for (const p of [50, 95]) {
      figures.push(
        {
          name: `register a host (concurrency 8): p${p}`,
          value: percentile(on.register, p),
          unit: 'ms',
          baseline: { name: 'auth off', value: percentile(off.register, p) },
        },
        {
          name: `agent poll, answered at once (concurrency 8): p${p}`,
          value: percentile(on.poll, p),
          unit: 'ms',
          baseline: { name: 'auth off', value: percentile(off.poll, p) },
        },
        { name: `rotate a host, no attachments, to idle: p${p}`, value: percentile(on.rotate, p), unit: 'ms' },
      );
    }
    return figures;
  },
};
