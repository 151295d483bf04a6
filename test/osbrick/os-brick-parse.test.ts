import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { connectorProperties } from '../../src/agent/connector-properties.ts';
import { FakeHost } from '../../src/agent/host/testing/fake-host.ts';
import { debianPythonSkip, runDebianPython } from '../support/debian-python.ts';
import { lifecycleClient } from '../support/lifecycle.ts';
import { startTarget, type Target } from '../support/target.ts';
import { SimClient } from '../support/sim-client.ts';

/**
 * Every connection info the service answers, read by os-brick itself: Debian's python3-os-brick
 * `NVMeOFConnProps(data, find_controllers=False)`, the parser its NVMeOFConnector runs before it
 * connects anything. The connectors are os-brick's own `get_connector_properties` output (see
 * nvmeof_props.py for the host probes it is given) and, for DM, the Portalis agent's.
 * In-process service with a real PostgreSQL and the simulator over HTTP.
 */
const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'nvmeof_props.py');
const skip = debianPythonSkip(['os_brick.initiator.connectors.nvmeof'], 'python3-os-brick');

interface BrickTarget {
  nqn: string;
  portals: [string, string, string][];
  uuid: string | null;
  nguid: string | null;
  ns_id: string | null;
  host_nqn: string | null;
}
type Parsed =
  | { ok: true; is_replicated: boolean | null; targets: BrickTarget[] }
  | { ok: false; error: string; message: string };

type Data = Record<string, any>;

/** os-brick's connector dict for a made-up compute host. */
async function brickConnector(opts: {
  multipath: boolean;
  native: boolean;
  enforce?: boolean;
  multipathd?: boolean;
}): Promise<Record<string, unknown>> {
  const id = randomUUID();
  return runDebianPython(SCRIPT, ['connector'], {
    multipath: opts.multipath,
    enforce_multipath: opts.enforce ?? false,
    native: opts.native,
    multipathd: opts.multipathd ?? true,
    host: `nova-${id.slice(0, 8)}`,
    nqn: `nqn.2014-08.org.nvmexpress:uuid:${id}`,
    ip: '192.0.2.20',
    system_uuid: id,
    root_uuid: randomUUID(),
  });
}

const parse = (datas: Data[]) => runDebianPython<Parsed[]>(SCRIPT, ['parse'], datas);

describe('os-brick reads the connection info (Debian python3-os-brick, NVMeOFConnProps)', { skip }, () => {
  let t: Target;
  let sim: SimClient;
  let api: ReturnType<typeof lifecycleClient>;
  let subsystemNqn: string;

  before(async () => {
    t = await startTarget();
    sim = new SimClient(t.simUrl, { jwt: t.simJwt });
    api = lifecycleClient(t);
    subsystemNqn = (await sim.clusterInfo()).subsystemNQN;
  });
  after(async () => t?.close());

  /** The simulator's portals of the volume, `address:port`, the optimized one first. */
  async function replicaPortals(backendUuid: string): Promise<string[]> {
    const state = await sim.state();
    const v = state.volumes.find((x: { uuid: string }) => x.uuid === backendUuid);
    const at = (node: string) => state.nodes.find((n: { uuid: string }) => n.uuid === node).nvmeEndpoint as string;
    const replicas = v.replicas as string[];
    const optimized = replicas.filter((n) => v.ana[n] === 'optimized');
    assert.equal(optimized.length, 1, 'one optimized replica');
    return [at(optimized[0]!), ...replicas.filter((n) => n !== optimized[0]).map(at)];
  }

  async function attach(volumeId: string, connector: Record<string, unknown>): Promise<Data> {
    const r = await api.init(volumeId, connector);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.connection_info.driver_volume_type, 'nvmeof');
    return r.body.connection_info.data;
  }

  /** os-brick saw exactly the one target the service meant, portal for portal. */
  function assertOneTarget(p: Parsed, data: Data, vol: { backend_uuid: string }, hostNqn: unknown, label: string) {
    assert.ok(p.ok, `${label}: os-brick refused it: ${JSON.stringify(p)}`);
    assert.equal(p.is_replicated, false, `${label}: not an MD RAID replica set`);
    assert.equal(p.targets.length, 1, `${label}: one target`);
    const [target] = p.targets;
    assert.equal(target!.nqn, subsystemNqn, `${label}: the cluster's subsystem NQN`);
    assert.deepEqual(
      target!.portals,
      (data.portals as [string, number, string][]).map(([a, port]) => [a, String(port), 'tcp']),
      `${label}: every portal, in the service's order`,
    );
    assert.equal(target!.uuid, vol.backend_uuid.toLowerCase(), `${label}: vol_uuid is the namespace UUID`);
    assert.equal(target!.ns_id, data.ns_id, `${label}: ns_id`);
    assert.match(String(target!.ns_id), /^\d+$/, `${label}: ns_id as sysfs text`);
    assert.equal(target!.host_nqn, hostNqn, `${label}: host_nqn`);
  }

  it("os-brick's connector dict: the keys get_connector_properties returns, accepted by the service", async () => {
    const c = await brickConnector({ multipath: true, native: true });
    assert.deepEqual(Object.keys(c).sort(), [
      'host',
      'ip',
      'multipath',
      'nqn',
      'nvme_native_multipath',
      'os_type',
      'platform',
      'system uuid',
      'uuid',
    ]);
    assert.equal(c.multipath, true);
    assert.equal(c.nvme_native_multipath, true);
    // Debian's os-brick 6.1 reports multipath only while multipathd answers (before os-brick bug
    // #2085013 was fixed): such a host gets single-path connection info, also readable.
    assert.equal((await brickConnector({ multipath: true, native: true, multipathd: false })).multipath, false);
  });

  it('native, os-brick with native off, and single: one target each, every replica portal, optimized first', async () => {
    const vol = await api.created({ replicas: 3, multiattach: true });
    const expected = await replicaPortals(vol.backend_uuid);
    const hosts = {
      native: await brickConnector({ multipath: true, native: true }),
      'os-brick, native off': await brickConnector({ multipath: true, native: false }),
      'no multipath': await brickConnector({ multipath: false, native: false }),
      'native, no multipathd (Debian 6.1)': await brickConnector({ multipath: true, native: true, multipathd: false }),
    };
    const modes = { native: 'native', 'os-brick, native off': 'single', 'no multipath': 'single' } as Record<
      string,
      string
    >;
    const datas: Data[] = [];
    for (const [label, c] of Object.entries(hosts)) {
      const data = await attach(vol.id, c);
      assert.equal(data.multipath_mode, modes[label] ?? 'single', `${label}: multipath_mode`);
      assert.equal(data.dm_replicas, undefined, `${label}: never dm_replicas for os-brick`);
      assert.deepEqual(
        (data.portals as [string, number][]).map(([a, p]) => `${a}:${p}`),
        expected,
        `${label}: every replica's portal, the optimized first`,
      );
      datas.push(data);
    }
    const parsed = await parse(datas);
    for (const [i, [label, c]] of Object.entries(hosts).entries())
      assertOneTarget(parsed[i]!, datas[i]!, vol, c.nqn, label);
  });

  it('a one-replica volume: one portal, read the same way', async () => {
    const vol = await api.created({ replicas: 1 });
    const c = await brickConnector({ multipath: true, native: true });
    const data = await attach(vol.id, c);
    assert.equal(data.portals.length, 1);
    const [p] = await parse([data]);
    assertOneTarget(p!, data, vol, c.nqn, 'one replica');
  });

  it('enforce_multipath with native multipath off: 400 multipath_required, nothing granted', async () => {
    const vol = await api.created({ replicas: 3 });
    const c = await brickConnector({ multipath: true, native: false, enforce: true });
    assert.equal(c.multipath, true);
    // Debian's os-brick 6.1 keeps enforce_multipath to itself (its connect checks it); newer
    // os-brick adds it to the connector dict (base.py get_connector_properties), as here.
    assert.equal(c.enforce_multipath, undefined);
    const r = await api.init(vol.id, { ...c, enforce_multipath: true });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'multipath_required');
    assert.deepEqual(await sim.acl(vol.backend_uuid), []);
  });

  it("the agent's DM connector gets dm_replicas, which os-brick cannot read (KeyError: 'nqn'): never sent to it", async () => {
    const vol = await api.created({ replicas: 3 });
    const agent = await connectorProperties(
      new FakeHost({ kernel: { multipath: false }, hostnqn: `nqn.2014-08.org.nvmexpress:uuid:${randomUUID()}` }),
    );
    assert.equal(agent.dm_multipath, true);
    const data = await attach(vol.id, agent as unknown as Record<string, unknown>);
    assert.equal(data.multipath_mode, 'dm');
    assert.equal(data.dm_replicas.length, 3);
    assert.equal(data.target_nqn, undefined);
    const [p] = await parse([data]);
    // os-brick never implemented dm_replicas: without target_nqn it takes its legacy-format
    // branch and looks for `nqn`. This is why only a connector with dm_multipath gets them.
    assert.deepEqual(p, { ok: false, error: 'KeyError', message: "'nqn'" });
  });
});
