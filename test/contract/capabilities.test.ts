import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startTarget, type Target } from '../support/target.ts';
import { SimClient } from '../support/sim-client.ts';
import { GiB } from '../../src/shared/units.ts';

/** `GET /v1/capabilities`: Cinder's get_volume_stats keys; in-process or by URL. */
describe('capabilities', () => {
  let t: Target;
  let sim: SimClient;

  before(async () => {
    t = await startTarget();
    sim = new SimClient(t.simUrl, { jwt: t.simJwt });
  });
  after(async () => t?.close());

  it("reports the Cinder get_volume_stats keys with the backend's real capacity", async () => {
    const r = await t.http.get('/v1/capabilities').set({ authorization: `Bearer ${t.token}` });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const {
      total_capacity_gb: total,
      free_capacity_gb: free,
      volume_backend_name: name,
      driver_version: version,
      ...fixed
    } = r.body;
    assert.deepEqual(fixed, {
      vendor_name: 'Portalis',
      storage_protocol: 'NVMe-oF',
      reserved_percentage: 0,
      multiattach: true,
      online_extend_support: true,
      thin_provisioning_support: true,
      thick_provisioning_support: false,
      QoS_support: true,
      compression: [true, false],
      shared_targets: true,
    });
    assert.equal(typeof name, 'string');
    assert.match(version, /^\d+\.\d+\.\d+/);
    // The simulator reports its statistics, so the figures are numbers, not 'unknown'. Free
    // space moves as other tests create volumes (and is cached), so only its range is checked.
    const { cluster } = await sim.state();
    assert.equal(total, Math.floor(cluster.capacityBytes / GiB));
    assert.equal(typeof free, 'number');
    assert.ok(free >= 0 && free <= total, `free ${free} within 0..${total}`);
  });

  it('needs the admin token', async () => {
    assert.equal((await t.http.get('/v1/capabilities')).status, 401);
  });
});
