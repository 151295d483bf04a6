#!/usr/bin/env node
// The compiled build (`dist/`, made by `npm install` / `npm ci` through the `prepare` script, or
// `npm run build`). A checkout installed with --ignore-scripts has no dist/: it then runs the
// TypeScript sources through tsx (a development dependency), saying so, or says how to build.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/src/cli/main.js', import.meta.url);
let entry = compiled;
if (!existsSync(compiled)) {
  try {
    const { register } = await import('tsx/esm/api');
    register();
  } catch {
    process.stderr.write('portalis: no compiled build in dist/ and no tsx to run the sources: run `npm run build`\n');
    process.exit(2);
  }
  process.stderr.write('portalis: no dist/ (run `npm run build`); running the TypeScript sources through tsx\n');
  entry = new URL('../src/cli/main.ts', import.meta.url);
}
const { main } = await import(entry.href);
process.exit(await main(process.argv.slice(2)));
