import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { cleanEnv, type CliProcess, startCli } from '../support/cli.ts';
import { debianPythonSkip, runDebianPython } from '../support/debian-python.ts';

/**
 * Cinder's LightOS driver is the reference client of the LightOS API: Debian's python3-cinder
 * `LightOSVolumeDriver` (with its own `LightOSConnection`, requests, and Cinder's objects and
 * coordination lock; see lightos_driver.py) runs its whole lifecycle against `portalis sim`
 * started as its own process, over real HTTP. Every request it sends carries its empty `Expect:`
 * header, which Node's HTTP server refuses with 417 unless the simulator handles it.
 */
const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lightos_driver.py');
const skip = debianPythonSkip(['cinder.volume.drivers.lightos', 'cinder.tests.unit.fake_volume'], 'python3-cinder');
const GIB = 1024 ** 3;
const HOST_NQN = 'nqn.2014-08.org.nvmexpress:uuid:5e0b3a8e-8f6c-4d0a-9d54-1c2b3a4d5e6f';

interface Recorded {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | null;
  status: number;
  response: any;
}
interface Step {
  ok: boolean;
  result?: any;
  error?: string;
  message?: string;
  requests: string[];
  state: any;
}
interface Report {
  steps: Record<string, Step>;
  requests: Recorded[];
  names: Record<'volume' | 'from_snapshot' | 'clone' | 'snapshot' | 'clone_snapshot', string>;
}

describe("Cinder's LightOS driver against `portalis sim` (Debian python3-cinder)", { skip }, () => {
  let sim: CliProcess;
  let url: string;
  let lockDir: string;
  let report: Report;
  const jwt = `jwt-${randomBytes(12).toString('hex')}`;

  before(async () => {
    lockDir = await mkdtemp(path.join(os.tmpdir(), 'portalis-cinder-locks-'));
    sim = startCli(
      ['sim'],
      cleanEnv({ PORTALIS_SIM_PORT: '0', PORTALIS_SIM_JWT: jwt, PORTALIS_SIM_LOG_LEVEL: 'warn' }),
    );
    // Should this file be cut short (a runner timeout skips `after`), no simulator outlives it.
    process.once('exit', () => sim.child.kill('SIGKILL'));
    url = (await sim.waitFor(/listening on (http:\/\/[^\s]+)/))[1]!;
    report = await runDebianPython<Report>(SCRIPT, [], { url, jwt, host_nqn: HOST_NQN, lock_dir: lockDir });
  });
  after(async () => {
    await sim?.stop();
    if (lockDir) await rm(lockDir, { recursive: true, force: true });
  });

  /** The named step succeeded; its result, requests and the simulator's state after it. */
  function step(name: string): Step {
    const s = report.steps[name];
    assert.ok(s, `step ${name} ran`);
    assert.ok(s.ok, `${name} failed: ${s.error}: ${s.message}`);
    return s;
  }
  const volumeNamed = (s: Step, name: string) => s.state.volumes.find((v: { name: string }) => v.name === name);
  const snapshotNamed = (s: Step, name: string) => s.state.snapshots.find((v: { name: string }) => v.name === name);

  it('every request carries the driver headers (empty Expect, Accept, Bearer JWT) and none is refused with 417', () => {
    assert.ok(report.requests.length >= 40, `${report.requests.length} requests`);
    for (const r of report.requests) {
      const where = `${r.method} ${r.url}`;
      assert.equal(r.headers.Expect, '', `${where}: empty Expect`);
      assert.equal(r.headers.Accept, 'application/json', where);
      assert.equal(r.headers.Authorization, `Bearer ${jwt}`, where);
      if (r.method === 'POST' || r.method === 'PUT') assert.equal(r.headers['Content-Type'], 'application/json', where);
      assert.notEqual(r.status, 417, `${where}: 417`);
      assert.ok(r.status === 200 || r.status === 404, `${where}: ${r.status} ${JSON.stringify(r.response)}`);
    }
  });

  it('do_setup and check_for_setup_error: clusterinfo and nodes', () => {
    const s = step('do_setup');
    assert.deepEqual(s.requests, ['GET /api/v2/clusterinfo', 'GET /api/v2/nodes']);
    assert.equal(s.result.subsystemNQN, s.state.cluster.subsystemNQN);
    assert.equal(s.result.cluster_uuid, s.state.cluster.uuid);
    assert.deepEqual(Object.keys(s.result.targets).sort(), s.state.nodes.map((n: { uuid: string }) => n.uuid).sort());
    for (const n of s.state.nodes) assert.equal(s.result.targets[n.uuid].nvmeEndpoint, n.nvmeEndpoint);
    const node = step('get_node');
    assert.equal(node.result[0], 200);
    assert.equal(node.result[1].UUID, s.state.nodes[0].uuid);
  });

  it('create_volume: the volume type extra specs reach the backend; a repeated create reuses it', () => {
    const s = step('create_volume');
    assert.deepEqual(
      s.requests.map((r) => r.split(' ')[0]),
      ['GET', 'POST', 'GET'],
    );
    const v = volumeNamed(s, report.names.volume);
    assert.ok(v, 'volume created');
    assert.equal(v.state, 'Available');
    assert.equal(v.sizeBytes, GIB);
    assert.equal(v.replicaCount, 2, 'lightos:num_replicas');
    assert.deepEqual(v.acl, [], 'ALLOW_NONE: no host');
    const again = step('create_volume_again');
    assert.ok(!again.requests.some((r) => r.startsWith('POST')), 'no second POST');
    assert.equal(again.state.volumes.filter((x: { name: string }) => x.name === report.names.volume).length, 1);
    const list = step('list_volumes');
    assert.equal(list.result[0], 200);
  });

  it('initialize_connection: ACL PUT with If-Match, then the lightos connection properties', () => {
    const s = step('initialize_connection');
    const v = volumeNamed(s, report.names.volume);
    assert.deepEqual(v.acl, [HOST_NQN]);
    const { driver_volume_type, data } = s.result;
    assert.equal(driver_volume_type, 'lightos');
    assert.equal(data.uuid, v.uuid);
    assert.equal(data.subsysnqn, s.state.cluster.subsystemNQN);
    const hosts = new Set(s.state.nodes.map((n: { nvmeEndpoint: string }) => n.nvmeEndpoint.replace(/:\d+$/, '')));
    assert.deepEqual(Object.keys(data.lightos_nodes).sort(), [...hosts].sort());
    for (const n of Object.values<any>(data.lightos_nodes)) assert.equal(n.target_port, 8009);
  });

  it('every PUT sends If-Match with the ETag of the GET just before it', () => {
    const puts = report.requests.map((r, i) => ({ r, i })).filter(({ r }) => r.method === 'PUT');
    assert.ok(puts.length >= 5, `${puts.length} PUTs`);
    for (const { r, i } of puts) {
      const uuid = r.url.split('/').pop();
      const get = report.requests
        .slice(0, i)
        .reverse()
        .find((x) => x.method === 'GET' && x.status === 200 && x.response?.UUID === uuid);
      assert.ok(get, `a GET of ${uuid} before the PUT`);
      assert.equal(r.headers['If-Match'], get.response.ETag, `${r.url}: If-Match`);
      assert.equal(r.status, 200);
    }
  });

  it('extend_volume: the new size with If-Match', () => {
    const s = step('extend_volume');
    assert.equal(volumeNamed(s, report.names.volume).sizeBytes, 2 * GIB);
  });

  it('snapshots: create, a volume from it, a clone through an intermediate snapshot that is deleted again', () => {
    const snap = snapshotNamed(step('create_snapshot'), report.names.snapshot);
    assert.ok(snap, 'snapshot created');
    assert.equal(snap.state, 'Available');
    const fromSnap = volumeNamed(step('create_volume_from_snapshot'), report.names.from_snapshot);
    assert.ok(fromSnap, 'volume from the snapshot');
    assert.equal(fromSnap.state, 'Available');
    assert.equal(fromSnap.sizeBytes, 3 * GIB, 'larger than its 2 GiB snapshot');
    const s = step('create_cloned_volume');
    const clone = volumeNamed(s, report.names.clone);
    assert.ok(clone, 'clone created');
    assert.equal(clone.sizeBytes, 2 * GIB);
    assert.equal(snapshotNamed(s, report.names.clone_snapshot), undefined, 'intermediate snapshot deleted');
    assert.ok(s.requests.some((r) => r.startsWith('DELETE /api/v2/projects/default/snapshots/')));
  });

  it('terminate_connection: the host leaves the ACL; connector None with force empties it', () => {
    assert.deepEqual(volumeNamed(step('terminate_connection'), report.names.volume).acl, []);
    assert.deepEqual(volumeNamed(step('initialize_connection_again'), report.names.volume).acl, [HOST_NQN]);
    assert.deepEqual(volumeNamed(step('terminate_connection_force'), report.names.volume).acl, []);
    // The driver waited for its own GET to show the sentinel it wrote.
    const last = [...report.requests].reverse().find((r) => r.method === 'PUT');
    assert.deepEqual(JSON.parse(last!.body!), { acl: { values: ['ALLOW_NONE'] } });
  });

  it('cluster statistics: the fields the driver reads, consistent with the simulator', () => {
    const s = step('get_cluster_stats');
    assert.deepEqual(s.requests, ['GET /api/v2/cluster']);
    const { capacityBytes, usedBytes } = s.state.cluster;
    assert.equal(s.result.statistics.effectivePhysicalStorage, String(capacityBytes));
    assert.equal(s.result.statistics.freePhysicalStorage, String(capacityBytes - usedBytes));
    assert.equal(s.result.total_capacity_gb, Math.floor(capacityBytes / GIB));
    const stats = step('get_volume_stats').result;
    assert.equal(stats.volume_backend_name, 'lightos-sim');
    assert.equal(stats.storage_protocol, 'lightos');
  });

  it('deletes: snapshot and volumes gone; deleting again succeeds', () => {
    assert.equal(snapshotNamed(step('delete_snapshot'), report.names.snapshot), undefined);
    step('delete_snapshot_again');
    for (const name of ['clone', 'from_snapshot', 'volume'] as const) step(`delete_volume_${name}`);
    const last = step('delete_volume_again');
    assert.deepEqual(last.state.volumes, []);
    assert.deepEqual(last.state.snapshots, []);
  });
});
