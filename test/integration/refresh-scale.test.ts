import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { buildConnectionInfo } from '../../src/driver/connection-info.ts';
import { refreshPortals } from '../../src/driver/refresh-portals.ts';
import { availableVolume, SimClient } from '../support/sim-client.ts';
import { startTarget, type Target } from '../support/target.ts';

const VOLUMES = 200;
const PER_VOLUME = 10;

/**
 * The cost of one refresh pass at scale: 2,000 attachments on 200 volumes (10 hosts each), real
 * PostgreSQL, the simulator over HTTP. The figures are printed, not asserted (timing goals
 * belong in benchmarks); what is asserted is that the pass reads each volume once and changes
 * exactly the attachments whose volume moved.
 */
describe('portal refresh at scale', () => {
  let t: Target;
  before(async () => {
    t = await startTarget();
  });
  after(() => t?.close());

  it(`one pass over ${VOLUMES * PER_VOLUME} attachments on ${VOLUMES} volumes`, async () => {
    const deps = t.deps!;
    const sim = new SimClient(t.simUrl, { jwt: t.simJwt });
    const { subsystemNqn } = await deps.clusterInfo();
    const backendUuids: string[] = [];
    for (let i = 0; i < VOLUMES; i++) {
      const r = await sim.request('POST', '/api/v2/projects/default/volumes', {
        name: `scale-${i}`,
        size: '1 gib',
        replicaCount: 2,
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      backendUuids.push(r.body.UUID);
    }
    for (const u of backendUuids) await availableVolume(t.simUrl, u);
    for (const backendUuid of backendUuids) {
      const volumeId = randomUUID();
      await deps.store.insertVolume({
        id: volumeId,
        name: `volume-${volumeId}`,
        sizeGb: 1,
        replicas: 2,
        multiattach: true,
        status: 'available',
      });
      await deps.store.updateVolume(volumeId, { backendUuid });
      const paths = await deps.backend.volumePaths(backendUuid);
      for (let h = 0; h < PER_VOLUME; h++) {
        const nqn = `nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-${String(h).padStart(12, '0')}`;
        const connector = { host: `host-${h}`, nqn, multipath: true, nvme_native_multipath: true };
        const a = await deps.store.insertAttachment({
          volumeId,
          hostNqn: nqn,
          hostName: connector.host,
          instanceUuid: null,
          connector,
          multipathMode: 'native',
          connectedBy: 'agent' as const,
        });
        const connectionInfo = buildConnectionInfo({
          volumeUuid: backendUuid,
          subsystemNqn,
          paths,
          hostNqn: nqn,
          mode: 'native',
          accessMode: 'rw',
        });
        await deps.store.updateAttachment(a.id, { status: 'attached', connectionInfo });
      }
    }

    // Count what a pass asks the backend, by operation.
    const calls = new Map<string, number>();
    const backend = new Proxy(deps.backend, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          calls.set(String(prop), (calls.get(String(prop)) ?? 0) + 1);
          return v.apply(target, args);
        };
      },
    });
    const counted = { ...deps, backend };
    let started = performance.now();
    const steady = await refreshPortals(counted);
    const steadyMs = performance.now() - started;
    assert.deepEqual([steady.volumes, steady.attachments, steady.changed], [VOLUMES, VOLUMES * PER_VOLUME, 0]);
    assert.deepEqual(Object.fromEntries(calls), { volumePaths: VOLUMES }, 'each volume read once per pass');

    // Every volume's non-primary replica moves to the one node it is not on.
    const state = await sim.state();
    for (const v of state.volumes) {
      const from = v.replicas.find((r: string) => r !== v.primaryNodeUUID);
      const to = state.nodes.find((n: any) => !v.replicas.includes(n.uuid)).uuid;
      assert.equal((await sim.moveReplica(v.uuid, from, to)).status, 200);
    }
    started = performance.now();
    const moved = await refreshPortals(counted);
    const movedMs = performance.now() - started;
    assert.equal(moved.changed, VOLUMES * PER_VOLUME);
    console.log(
      `# portal refresh: ${VOLUMES * PER_VOLUME} attachments on ${VOLUMES} volumes: ` +
        `no change ${steadyMs.toFixed(0)} ms, all changed ${movedMs.toFixed(0)} ms; ` +
        `${VOLUMES} volume reads per pass`,
    );
  });
});
