/**
 * Test support for code that talks to the simulator over HTTP: a JSON fetch, typed admin calls,
 * and a condition wait with a deadline (never a fixed sleep).
 */
import { poll } from '../shared/poll.ts';

export interface JsonAnswer {
  status: number;
  body: any;
  headers: Headers;
}

export async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<JsonAnswer> {
  const init: RequestInit = { method, headers: { accept: 'application/json', ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Resolves once `cond()` holds; rejects after `timeoutMs` (default 5 s). */
export async function waitUntil(
  cond: () => boolean | Promise<boolean>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<void> {
  const r = await poll(async () => ((await cond()) ? { done: true, value: true } : { done: false, last: null }), {
    deadlineMs: opts.timeoutMs ?? 5000,
    intervalMs: opts.intervalMs ?? 5,
  });
  if (!r.done) throw new Error(`timed out waiting for ${opts.what ?? 'condition'}`);
}

/** Waits until the simulator's volume `uuid` is Available; returns it as its LightOS API shows it. */
export async function availableVolume(base: string, uuid: string): Promise<any> {
  const get = () => call(base, 'GET', `/api/v2/projects/default/volumes/${uuid}`);
  await waitUntil(async () => (await get()).body.state === 'Available', { what: `volume ${uuid} Available` });
  return (await get()).body;
}

/** Thin client of the simulator's admin API. */
export class SimAdmin {
  constructor(readonly url: string) {}

  async state(): Promise<any> {
    return (await call(this.url, 'GET', '/sim/v1/state')).body;
  }

  async faults(f: Record<string, unknown>): Promise<JsonAnswer> {
    return call(this.url, 'PUT', '/sim/v1/faults', f);
  }

  async clearFaults(): Promise<void> {
    await call(this.url, 'DELETE', '/sim/v1/faults');
  }

  async node(ref: string | number, up: boolean): Promise<JsonAnswer> {
    return call(this.url, 'POST', `/sim/v1/nodes/${ref}/${up ? 'up' : 'down'}`);
  }

  async reset(): Promise<void> {
    await call(this.url, 'POST', '/sim/v1/reset');
  }
}
