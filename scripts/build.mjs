#!/usr/bin/env node
/**
 * `npm run build` (also run by `npm install` / `npm ci` through `prepare`): compiles src/ and
 * db/ to dist/ with tsc (tsconfig.build.json, incremental), then copies beside the JavaScript the
 * files the code reads at run time, so that dist/ mirrors the tree and every path the code builds
 * from `import.meta.url` holds in both: the OpenAPI document and the dashboard's files. The
 * document also goes as JSON (`dist/api-spec/portalis.json`), which the service reads instead of
 * parsing the YAML at every start.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ASSETS = ['api-spec/portalis.yaml', 'src/dashboard'];

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
for (const rel of ASSETS) {
  const to = path.join(root, 'dist', rel);
  mkdirSync(path.dirname(to), { recursive: true });
  cpSync(path.join(root, rel), to, { recursive: true });
}
const spec = parse(readFileSync(path.join(root, 'api-spec/portalis.yaml'), 'utf8'));
writeFileSync(path.join(root, 'dist/api-spec/portalis.json'), JSON.stringify(spec));
