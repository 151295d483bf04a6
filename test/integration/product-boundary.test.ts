import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * What ships: the programs, never their test doubles. Doubles live in a `testing/` folder beside
 * the port they stand in for (agent/host/testing/, agent/testing/, backend/lightos/testing/,
 * sim/nvmet/testing/) or under test/; production code never imports them, and neither the npm
 * package nor the image carries them.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(rel);
    return e.name.endsWith('.ts') ? [rel] : [];
  });
}

const isDouble = (rel: string) => rel.split(path.sep).includes('testing') || rel.endsWith('.test.ts');

/** Every module specifier a file imports, statically or with `import()`. */
function importsOf(rel: string): string[] {
  const text = readFileSync(path.join(ROOT, rel), 'utf8');
  return [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)'([^']+)'/gm)].map((m) => m[1]!);
}

describe('test doubles stay out of the product', () => {
  const production = sourceFiles('src').filter((f) => !isDouble(f));

  it('finds the production sources and the doubles it guards', () => {
    assert.ok(production.includes(path.join('src', 'server', 'service.ts')));
    assert.ok(production.includes(path.join('src', 'agent', 'host', 'linux.ts')));
    const doubles = sourceFiles('src').filter(isDouble);
    assert.ok(doubles.includes(path.join('src', 'agent', 'host', 'testing', 'fake-host.ts')));
    assert.ok(doubles.includes(path.join('src', 'backend', 'lightos', 'testing', 'fake-lightos.ts')));
  });

  it('no production module imports a testing/ folder or test/', () => {
    const offenders = production.flatMap((f) =>
      importsOf(f)
        .filter((spec) => spec.startsWith('.'))
        .map((spec) => path.relative(ROOT, path.resolve(path.dirname(path.join(ROOT, f)), spec)))
        .filter((target) => isDouble(target) || target.split(path.sep)[0] === 'test')
        .map((target) => `${f} imports ${target}`),
    );
    assert.deepEqual(offenders, []);
  });

  it('the service loads the simulator only when it starts one (no static import on the start-up path)', () => {
    for (const f of production.filter((p) => /^src[/\\](server|store|driver|backend)[/\\]/.test(p))) {
      const text = readFileSync(path.join(ROOT, f), 'utf8');
      assert.doesNotMatch(text, /^import [^;]*from '\.\.\/(\.\.\/)?sim\//m, `${f} imports the simulator statically`);
    }
  });

  it('the npm package leaves out test doubles and tests', () => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    const files = (JSON.parse(out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    assert.ok(files.includes('src/server/service.ts'), 'the package carries the sources');
    assert.ok(files.includes('bin/portalis.mjs'));
    assert.deepEqual(
      files.filter((f) => f.split('/').includes('testing') || f.endsWith('.test.ts') || f.startsWith('test/')),
      [],
    );
  });

  it('the image build context leaves them out too', () => {
    const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim());
    for (const pattern of ['src/**/testing', 'src/**/*.test.ts', 'test']) assert.ok(ignored.includes(pattern), pattern);
  });
});
