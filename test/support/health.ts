import assert from 'node:assert/strict';
import type { Target } from './target.ts';
import { connector, NATIVE } from './target.ts';
import { lifecycleClient } from './lifecycle.ts';

/** Drives hosts and reports through the real agent API, for the health tests. */
export function healthClient(t: Target) {
  const api = lifecycleClient(t);
  const admin = () => ({ authorization: `Bearer ${t.token}` });
  const as = (token: string) => ({ authorization: `Bearer ${token}` });

  async function newHost(over: Record<string, unknown> = {}) {
    const conn = connector({ ...NATIVE, ...over });
    const r = await t.http.post('/v1/hosts').set(admin()).send({ nqn: conn.nqn, name: conn.host });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const token = r.body.token as string;
    const reg = await t.http.post('/v1/agent/register').set(as(token)).send({ connector: conn });
    assert.equal(reg.status, 200, JSON.stringify(reg.body));
    return { conn, token, nqn: conn.nqn as string, name: conn.host as string };
  }

  /** A report with `live` of `total` paths live (the first one ANA-optimized). */
  const body = (health: string | null, live = 3, total = 3, over: Record<string, unknown> = {}) => ({
    state: 'connected',
    device_path: '/dev/nvme0n1',
    size_bytes: 1073741824,
    health,
    paths: Array.from({ length: total }, (_, i) => ({
      controller: i < live ? `nvme${i}` : null,
      address: '127.0.0.1',
      port: 4420 + i,
      transport: 'tcp',
      state: i < live ? 'live' : 'missing',
      ana_state: i < live ? (i === 0 ? 'optimized' : 'non-optimized') : null,
    })),
    error: null,
    ...over,
  });

  async function report(token: string, id: string, b: Record<string, unknown>) {
    const r = await t.http.put(`/v1/agent/attachments/${id}/report`).set(as(token)).send(b);
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }

  async function attach(host: { conn: Record<string, unknown> }, vol?: string) {
    const v = vol ?? (await api.created({ multiattach: true })).id;
    const init = await api.init(v, host.conn);
    return { volumeId: v as string, attachmentId: init.body.attachment_id as string };
  }

  return { api, admin, as, newHost, body, report, attach };
}
