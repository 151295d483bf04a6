import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runSim, SimConfigError, simConfigFromEnv } from './server.ts';
import { call } from './testing.ts';

describe('simConfigFromEnv', () => {
  test('defaults: 127.0.0.1:8090, 3 nodes at 127.0.0.1 from port 4420, no JWT', () => {
    assert.deepEqual(simConfigFromEnv({}), {
      host: '127.0.0.1', port: 8090, nodes: 3, nodeAddress: '127.0.0.1', basePort: 4420, jwt: undefined,
    });
  });

  test('reads every PORTALIS_SIM_* variable', () => {
    const c = simConfigFromEnv({
      PORTALIS_SIM_HOST: '0.0.0.0', PORTALIS_SIM_PORT: '0', PORTALIS_SIM_NODES: '5',
      PORTALIS_SIM_NODE_ADDRESS: '[fd00::1]', PORTALIS_SIM_BASE_PORT: '5000', PORTALIS_SIM_JWT: 'abc',
    });
    assert.deepEqual(c, { host: '0.0.0.0', port: 0, nodes: 5, nodeAddress: 'fd00::1', basePort: 5000, jwt: 'abc' });
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
  ];
  for (const [env, name] of bad) {
    test(`a bad ${name} stops start-up with a message naming it (${JSON.stringify(env)})`, () => {
      assert.throws(() => simConfigFromEnv(env), (e: Error) => e instanceof SimConfigError && e.message.includes(name));
    });
  }
});

describe('runSim', () => {
  test('starts from the environment, prints its URL, and serves the LightOS API there', async () => {
    const lines: string[] = [];
    const sim = await runSim({ PORTALIS_SIM_PORT: '0', PORTALIS_SIM_NODES: '2', PORTALIS_SIM_BASE_PORT: '5500' }, { out: (l) => lines.push(l) });
    try {
      assert.equal(lines.length, 1);
      assert.ok(lines[0].includes(sim.url), lines[0]);
      const nodes = (await call(sim.url, 'GET', '/api/v2/nodes')).body.nodes;
      assert.deepEqual(nodes.map((n: any) => n.nvmeEndpoint), ['127.0.0.1:5500', '127.0.0.1:5501']);
    } finally {
      await sim.close();
    }
  });

  test('an IPv6 node address is bracketed in nvmeEndpoint', async () => {
    const sim = await runSim({ PORTALIS_SIM_PORT: '0', PORTALIS_SIM_NODES: '1', PORTALIS_SIM_NODE_ADDRESS: '::1' }, { out: () => {} });
    try {
      const nodes = (await call(sim.url, 'GET', '/api/v2/nodes')).body.nodes;
      assert.equal(nodes[0].nvmeEndpoint, '[::1]:4420');
    } finally {
      await sim.close();
    }
  });
});
