/**
 * The rule of `unit-of-work.ts`, checked on the source: code under a volume lock reaches the
 * database only through its `VolumeWork`. Every callback of `underVolumeLock`, and every function
 * that takes a `VolumeWork`, must not use a value from outside it that reaches a pool: the
 * `DriverDeps` (anything with `locks`), or a `Store`, `HostStore` or `HealthStore` taken from it.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const dir = path.dirname(fileURLToPath(import.meta.url));
const POOL_TYPES = new Set(['Store', 'HostStore', 'HealthStore']);

/** `file:line: name` for each use of a pool-reaching value from outside code under a lock. */
function violations(extra?: { name: string; text: string }): string[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => path.join(dir, f));
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    allowImportingTsExtensions: true,
    skipLibCheck: true,
    types: ['node'],
  };
  const host = ts.createCompilerHost(options);
  if (extra) {
    const virtual = path.join(dir, extra.name);
    files.push(virtual);
    const { getSourceFile, fileExists, readFile } = host;
    host.getSourceFile = (f, lang, ...rest) =>
      f === virtual ? ts.createSourceFile(f, extra.text, lang) : getSourceFile.call(host, f, lang, ...rest);
    host.fileExists = (f) => f === virtual || fileExists.call(host, f);
    host.readFile = (f) => (f === virtual ? extra.text : readFile.call(host, f));
  }
  const program = ts.createProgram(files, options, host);
  const checker = program.getTypeChecker();
  const found: string[] = [];

  const typeName = (t: ts.Type) => t.aliasSymbol?.name ?? t.getSymbol()?.name ?? '';
  const isWork = (p: ts.ParameterDeclaration) => typeName(checker.getTypeAtLocation(p)) === 'VolumeWork';
  const checked = new Set<ts.Node>();

  /** The `DriverDeps` anywhere in `fn`; a pool's store (`Store` …) when it comes from outside `fn`. */
  const check = (fn: ts.Node, sf: ts.SourceFile) => {
    if (checked.has(fn)) return;
    checked.add(fn);
    const visit = (n: ts.Node) => {
      if (ts.isIdentifier(n)) {
        const sym = checker.getSymbolAtLocation(n);
        const decl = sym?.valueDeclaration;
        const isValue = decl && (ts.isParameter(decl) || ts.isVariableDeclaration(decl) || ts.isBindingElement(decl));
        const outside = decl && (decl.getSourceFile() !== sf || decl.pos < fn.pos || decl.end > fn.end);
        const t = isValue ? checker.getTypeAtLocation(n) : undefined;
        if (t && (t.getProperty('locks') !== undefined || (outside && POOL_TYPES.has(typeName(t))))) {
          const { line } = sf.getLineAndCharacterOfPosition(n.getStart(sf));
          found.push(`${path.basename(sf.fileName)}:${line + 1}: ${n.text}`);
        }
      }
      ts.forEachChild(n, visit);
    };
    visit(fn);
  };

  for (const sf of program.getSourceFiles()) {
    if (!files.includes(path.normalize(sf.fileName))) continue;
    const walk = (n: ts.Node) => {
      if (ts.isCallExpression(n)) {
        const callee = n.expression.getText(sf);
        if (callee.endsWith('withVolumeLock') && path.basename(sf.fileName) !== 'unit-of-work.ts') {
          const { line } = sf.getLineAndCharacterOfPosition(n.getStart(sf));
          found.push(`${path.basename(sf.fileName)}:${line + 1}: withVolumeLock outside unit-of-work.ts`);
        }
        if (callee === 'underVolumeLock' && n.arguments[2]) check(n.arguments[2], sf);
      }
      if (ts.isFunctionLike(n) && n.parameters.some(isWork)) check(n, sf);
      ts.forEachChild(n, walk);
    };
    walk(sf);
  }
  return found;
}

describe('the unit of work under a volume lock', () => {
  it('no code under a lock reaches a pooled store', () => {
    assert.deepEqual(violations(), []);
  });

  it('the check sees a pooled store captured by the callback or passed into the locked code', () => {
    const text = `
      import type { DriverDeps } from './deps.ts';
      import { underVolumeLock, type VolumeWork } from './unit-of-work.ts';
      export async function bad(deps: DriverDeps, id: string) {
        const pool = deps.store;
        await underVolumeLock(deps, id, async (uow) => { await pool.getVolume(id); return uow; });
        await underVolumeLock(deps, id, (uow) => locked(uow, deps));
        return deps.locks.withVolumeLock(id, async (store) => store.getVolume(id));
      }
      async function locked(uow: VolumeWork, deps: DriverDeps) {
        return [await uow.store.getVolume('x'), await deps.store.getVolume('x')];
      }
    `;
    assert.deepEqual(violations({ name: 'bad-example.ts', text }), [
      'bad-example.ts:6: pool',
      'bad-example.ts:7: deps',
      'bad-example.ts:8: withVolumeLock outside unit-of-work.ts',
      'bad-example.ts:10: deps',
      'bad-example.ts:11: deps',
    ]);
  });
});
