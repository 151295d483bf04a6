import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { MemoryDataPlane } from './memory-data-plane.ts';
import { ConfigError } from '../shared/env.ts';
import { dataPlaneFromConfig, runSim, simConfigFromEnv, startSimServer } from './server.ts';
import { call } from '../../test/support/sim-client.ts';

describe('simConfigFromEnv', () => {
  test('defaults: 127.0.0.1:8090, 3 nodes at 127.0.0.1 from port 4420, no JWT, in-memory data plane', () => {
    assert.deepEqual(simConfigFromEnv({}, '/srv/x'), {
      host: '127.0.0.1',
      port: 8090,
      nodes: 3,
      nodeAddress: '127.0.0.1',
      basePort: 4420,
      jwt: undefined,
      dataPlane: 'memory',
      dataDir: '/srv/x/.portalis/sim-nvmet',
      nvmetConfigfs: '/sys/kernel/config/nvmet',
      nvmetAllowAnyHost: false,
      nvmetDhgroup: 'null',
      logLevel: 'info',
      capacityBytes: 10 * 2 ** 40,
    });
  });

  test('reads every PORTALIS_SIM_* variable', () => {
    const c = simConfigFromEnv(
      {
        PORTALIS_SIM_HOST: '0.0.0.0',
        PORTALIS_SIM_PORT: '0',
        PORTALIS_SIM_NODES: '5',
        PORTALIS_SIM_NODE_ADDRESS: '[fd00::1]',
        PORTALIS_SIM_BASE_PORT: '5000',
        PORTALIS_SIM_JWT: 'abc',
        PORTALIS_SIM_DATA_PLANE: 'nvmet',
        PORTALIS_SIM_DATA_DIR: 'volumes',
        PORTALIS_SIM_NVMET_CONFIGFS: '/mnt/cfg/nvmet',
        PORTALIS_SIM_NVMET_ALLOW_ANY_HOST: 'true',
        PORTALIS_SIM_NVMET_DHGROUP: 'ffdhe2048',
        PORTALIS_SIM_LOG_LEVEL: 'debug',
        PORTALIS_SIM_CAPACITY_GIB: '40960',
      },
      '/srv/x',
    );
    assert.deepEqual(c, {
      host: '0.0.0.0',
      port: 0,
      nodes: 5,
      nodeAddress: 'fd00::1',
      basePort: 5000,
      jwt: 'abc',
      dataPlane: 'nvmet',
      dataDir: '/srv/x/volumes',
      nvmetConfigfs: '/mnt/cfg/nvmet',
      nvmetAllowAnyHost: true,
      nvmetDhgroup: 'ffdhe2048',
      logLevel: 'debug',
      capacityBytes: 40 * 2 ** 40,
    });
  });

  const bad: [Record<string, string>, string][] = [
    [{ PORTALIS_SIM_PORT: 'http' }, 'PORTALIS_SIM_PORT'],
    [{ PORTALIS_SIM_PORT: '70000' }, 'PORTALIS_SIM_PORT'],
    [{ PORTALIS_SIM_NODES: '0' }, 'PORTALIS_SIM_NODES'],
    [{ PORTALIS_SIM_NODES: '2.5' }, 'PORTALIS_SIM_NODES'],
    [{ PORTALIS_SIM_HOST: 'not a host!' }, 'PORTALIS_SIM_HOST'],
    [{ PORTALIS_SIM_NODE_ADDRESS: '-x' }, 'PORTALIS_SIM_NODE_ADDRESS'],
    [{ PORTALIS_SIM_BASE_PORT: '65535', PORTALIS_SIM_NODES: '3' }, 'PORTALIS_SIM_BASE_PORT'],
    [{ PORTALIS_SIM_JWT: 'has space' }, 'PORTALIS_SIM_JWT'],
    [{ PORTALIS_SIM_DATA_PLANE: 'kernel' }, 'PORTALIS_SIM_DATA_PLANE'],
    [{ PORTALIS_SIM_NVMET_CONFIGFS: 'sys/kernel/config/nvmet' }, 'PORTALIS_SIM_NVMET_CONFIGFS'],
    [{ PORTALIS_SIM_NVMET_ALLOW_ANY_HOST: 'maybe' }, 'PORTALIS_SIM_NVMET_ALLOW_ANY_HOST'],
    [{ PORTALIS_SIM_NVMET_DHGROUP: 'ffdhe1024' }, 'PORTALIS_SIM_NVMET_DHGROUP'],
    [{ PORTALIS_SIM_LOG_LEVEL: 'loud' }, 'PORTALIS_SIM_LOG_LEVEL'],
  ];
  for (const [env, name] of bad) {
    test(`a bad ${name} stops start-up with a message naming it (${JSON.stringify(env)})`, () => {
      assert.throws(
        () => simConfigFromEnv(env),
        (e: Error) => e instanceof ConfigError && e.message.includes(name),
      );
    });
  }
});

describe('dataPlaneFromConfig', () => {
  test('memory by default; nvmet without its configfs stops start-up naming the variables', async () => {
    assert.equal(dataPlaneFromConfig(simConfigFromEnv({})).kind, 'memory');
    const empty = await mkdtemp(path.join(os.tmpdir(), 'no-nvmet-'));
    try {
      const cfg = simConfigFromEnv({ PORTALIS_SIM_DATA_PLANE: 'nvmet', PORTALIS_SIM_NVMET_CONFIGFS: empty });
      assert.throws(
        () => dataPlaneFromConfig(cfg),
        (e: Error) =>
          e instanceof ConfigError &&
          /PORTALIS_SIM_DATA_PLANE: nvmet/.test(e.message) &&
          e.message.includes('PORTALIS_SIM_NVMET_CONFIGFS'),
      );
      await mkdir(path.join(empty, 'subsystems'));
      assert.equal(dataPlaneFromConfig(cfg).kind, 'nvmet');
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  test('a data plane that cannot start stops the simulator, after undoing what it set up', async () => {
    const dp = new MemoryDataPlane();
    dp.start = async () => {
      throw new Error('port 4420 in use');
    };
    await assert.rejects(runSim({ PORTALIS_SIM_PORT: '0' }, { dataPlane: dp, out: () => {} }), /port 4420 in use/);
    assert.equal(dp.stopped, true);
  });
});

describe('runSim', () => {
  test('starts from the environment, prints its URL, and serves the LightOS API there', async () => {
    const lines: string[] = [];
    const sim = await runSim(
      { PORTALIS_SIM_PORT: '0', PORTALIS_SIM_NODES: '2', PORTALIS_SIM_BASE_PORT: '5500' },
      { out: (l) => lines.push(l) },
    );
    try {
      assert.equal(lines.length, 1);
      assert.ok(lines[0].includes(sim.url), lines[0]);
      const nodes = (await call(sim.url, 'GET', '/api/v2/nodes')).body.nodes;
      assert.deepEqual(
        nodes.map((n: any) => n.nvmeEndpoint),
        ['127.0.0.1:5500', '127.0.0.1:5501'],
      );
    } finally {
      await sim.close();
    }
  });

  test('an IPv6 node address is bracketed in nvmeEndpoint', async () => {
    const sim = await runSim(
      { PORTALIS_SIM_PORT: '0', PORTALIS_SIM_NODES: '1', PORTALIS_SIM_NODE_ADDRESS: '::1' },
      { out: () => {} },
    );
    try {
      const nodes = (await call(sim.url, 'GET', '/api/v2/nodes')).body.nodes;
      assert.equal(nodes[0].nvmeEndpoint, '[::1]:4420');
    } finally {
      await sim.close();
    }
  });
});

describe('Expect header (through the real Node HTTP server)', () => {
  /** A raw request: fetch and supertest would not send an empty Expect field as given. */
  function raw(url: string, method: string, path: string, headers: Record<string, string>, body?: string) {
    return new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${url}${path}`, { method, headers, agent: false }, (res) => {
        let data = '';
        res.setEncoding('utf8').on('data', (d: string) => (data += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  test("an empty Expect (Cinder's LightOS driver sends one on every call) reaches the API; a real unknown one is 417", async () => {
    const sim = await startSimServer({ jwt: 'jwt-expect' });
    try {
      const h = { accept: 'application/json', expect: '', authorization: 'Bearer jwt-expect' };
      const info = await raw(sim.url, 'GET', '/api/v2/clusterinfo', h);
      assert.equal(info.status, 200, info.body);
      assert.match(JSON.parse(info.body).subsystemNQN, /^nqn\./);
      const body = JSON.stringify({
        name: 'volume-expect',
        size: '1 gib',
        replicaCount: '1',
        acl: { values: ['ALLOW_NONE'] },
      });
      const created = await raw(
        sim.url,
        'POST',
        '/api/v2/projects/default/volumes',
        { ...h, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
        body,
      );
      assert.equal(created.status, 200, created.body);
      assert.equal(JSON.parse(created.body).name, 'volume-expect');
      // Still authenticated: the empty Expect does not skip the JWT check.
      assert.equal((await raw(sim.url, 'GET', '/api/v2/clusterinfo', { expect: '' })).status, 401);
      const odd = await raw(sim.url, 'GET', '/api/v2/clusterinfo', { ...h, expect: 'something-else' });
      assert.equal(odd.status, 417);
      assert.match(JSON.parse(odd.body).message, /something-else/);
    } finally {
      await sim.close();
    }
  });
});
