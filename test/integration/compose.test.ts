import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.ts';
import { simConfigFromEnv } from '../../src/sim/server.ts';
import { ROOT } from '../support/cli.ts';

/**
 * No Docker engine runs on these machines, so the compose stack is kept honest by reading it:
 * its services, commands, environment and ports must agree with what the code does.
 */
describe('docker-compose.yml', () => {
  const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as {
    services: Record<
      string,
      {
        image?: string;
        build?: string;
        command?: string[];
        environment?: Record<string, string>;
        ports?: string[];
        depends_on?: Record<string, unknown>;
      }
    >;
  };
  const { postgres, sim, portalis } = compose.services;
  const containerPort = (ports: string[] | undefined) => Number(ports?.[0]?.split(':')[1]);
  // ${VAR:-default} as compose substitutes it with VAR unset.
  const substitute = (env: Record<string, string>) =>
    Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1')]));

  it('has PostgreSQL, the simulator and the service', () => {
    assert.deepEqual(Object.keys(compose.services).sort(), ['portalis', 'postgres', 'sim']);
    assert.match(postgres!.image!, /^postgres:\d+/);
    assert.equal(sim!.build, '.');
    assert.equal(portalis!.build, '.');
  });

  it('runs the simulator with `portalis sim` on the port it publishes, reachable from other containers', () => {
    assert.deepEqual(sim!.command, ['sim']);
    const cfg = simConfigFromEnv(substitute(sim!.environment!));
    assert.equal(cfg.port, containerPort(sim!.ports));
    assert.equal(cfg.host, '0.0.0.0');
    assert.equal(simConfigFromEnv({}).port, cfg.port, 'compose uses the simulator default port');
  });

  it('runs the service with `portalis serve` against that database and simulator', () => {
    assert.deepEqual(portalis!.command, ['serve']);
    const cfg = loadConfig(substitute(portalis!.environment!));
    assert.equal(cfg.port, containerPort(portalis!.ports));
    assert.equal(cfg.port, loadConfig({}).port, 'compose uses the service default port');
    assert.equal(cfg.host, '0.0.0.0');
    assert.equal(cfg.backend, 'sim');
    const simUrl = new URL(cfg.simUrl!);
    assert.equal(simUrl.hostname, 'sim');
    assert.equal(Number(simUrl.port), containerPort(sim!.ports));
    const db = new URL(cfg.databaseUrl!);
    assert.equal(db.hostname, 'postgres');
    assert.equal(db.username, postgres!.environment!.POSTGRES_USER);
    assert.equal(db.password, postgres!.environment!.POSTGRES_PASSWORD);
    assert.equal(db.pathname, `/${postgres!.environment!.POSTGRES_DB}`);
    assert.ok(cfg.adminToken && cfg.adminToken.length >= 16, 'the default token passes the service own check');
    assert.deepEqual(Object.keys(portalis!.depends_on!).sort(), ['postgres', 'sim']);
  });

  it('builds one image whose entrypoint is the portalis CLI with everything it loads at run time', () => {
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /ENTRYPOINT \["node", "bin\/portalis\.mjs"\]/);
    for (const dir of ['bin', 'src', 'api-spec', 'db'])
      assert.match(dockerfile, new RegExp(`COPY ${dir} `), `the image copies ${dir}/`);
    assert.match(dockerfile, /npm ci --omit=dev/);
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    assert.ok(pkg.dependencies.tsx, 'tsx is a runtime dependency, since the image omits dev dependencies');
  });
});
