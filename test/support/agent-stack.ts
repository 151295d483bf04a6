/**
 * The stack the agent's integration tests share: the service in this process on a real port,
 * the simulator's data plane being the fake host's target fabric, and the real agent daemon
 * talking to the service over HTTP with a host token of its own.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connectorProperties } from '../../src/agent/connector-properties.ts';
import { Attacher } from '../../src/agent/attacher.ts';
import { AgentDaemon } from '../../src/agent/daemon.ts';
import type { FakeHost } from '../../src/agent/host/testing/fake-host.ts';
import { HttpServiceClient } from '../../src/agent/service-client.ts';
import { systemClock } from '../../src/shared/clock.ts';
import { poll } from '../../src/shared/poll.ts';
import { FabricDataPlane } from './fabric-data-plane.ts';
import { startTarget, type Target } from './target.ts';

export interface AgentStack {
  t: Target;
  admin(): { authorization: string };
  attachment(id: string): Promise<any>;
  /** Waits until the attachment satisfies `ok`, with the stack's deadline. */
  until(id: string, ok: (a: any) => boolean, what: string): Promise<any>;
  /** Registers the host and runs the agent daemon until close(); returns its connector dict. */
  startAgent(opts: { recheckIntervalMs: number; pollWaitSeconds: number }): Promise<Record<string, any>>;
  /** Creates a 3-replica volume and initializes it for `conn` (native multipath). */
  attach(conn: Record<string, any>): Promise<{ id: string; volumeId: string; backend: string }>;
  /** Stops the agent, then the HTTP server and the service. */
  close(): Promise<void>;
}

export async function startAgentStack(
  host: FakeHost,
  opts: { untilDeadlineMs: number; portalRefreshMs?: number; env?: Record<string, string> },
): Promise<AgentStack> {
  const t = await startTarget({
    dataPlane: new FabricDataPlane(host),
    portalRefreshMs: opts.portalRefreshMs,
    env: opts.env,
  });
  const server: Server = await new Promise((resolve) => {
    const s = t.app!.listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const stop = new AbortController();
  let running: Promise<void> = Promise.resolve();
  const admin = () => ({ authorization: `Bearer ${t.token}` });
  const attachment = async (id: string) => (await t.http.get(`/v1/attachments/${id}`).set(admin())).body;
  return {
    t,
    admin,
    attachment,
    async until(id, ok, what) {
      const r = await poll(
        async () => {
          const a = await attachment(id);
          return ok(a) ? { done: true as const, value: a } : { done: false as const, last: a };
        },
        { deadlineMs: opts.untilDeadlineMs, intervalMs: 50 },
      );
      assert.ok(r.done, `${what}; last seen: ${JSON.stringify(r.done ? null : r.last)}`);
      return r.value;
    },
    async startAgent({ recheckIntervalMs, pollWaitSeconds }) {
      const conn = await connectorProperties(host);
      const issued = await t.http.post('/v1/hosts').set(admin()).send({ nqn: conn.nqn, name: conn.host });
      const daemon = new AgentDaemon({
        attacher: new Attacher(host, { deviceTimeoutMs: 5000 }),
        service: new HttpServiceClient({ url, token: issued.body.token }),
        host,
        connectorProperties: () => connectorProperties(host),
        clock: systemClock,
        recheckIntervalMs,
        pollWaitSeconds,
      });
      running = daemon.run(stop.signal);
      return conn;
    },
    async attach(conn) {
      const volumeId = randomUUID();
      const vol = await t.http.post('/v1/volumes').set(admin()).send({ id: volumeId, size_gb: 1, replicas: 3 });
      assert.equal(vol.status, 201);
      const init = await t.http
        .post(`/v1/volumes/${volumeId}/initialize_connection`)
        .set(admin())
        .send({ connector: { ...conn, multipath: true } });
      assert.equal(init.status, 200, JSON.stringify(init.body));
      return { id: init.body.attachment_id as string, volumeId, backend: vol.body.backend_uuid as string };
    },
    async close() {
      stop.abort();
      await running;
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await t.close();
    },
  };
}
