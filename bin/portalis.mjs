#!/usr/bin/env node
// The compiled build (`dist/`, made by `npm install` / `npm ci` through the `prepare` script, or
// `npm run build`). A checkout installed with --ignore-scripts has no dist/: it then runs the
// TypeScript sources through tsx (a development dependency), saying so, or says how to build.
import { existsSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';

if (process.argv[2] === 'serve') {
  // V8 heap settings for the service, set here because these are read while it runs
  // (--max-semi-space-size and --max-old-space-size are read only when the heap is set up, before
  // any script). bench fanout, 2,000 parked long polls: the live heap is ~55 MB; the rest of the
  // ~250 MB RSS was an empty nursery and the garbage of the parking burst.
  // - The young generation stays at V8's initial semi-spaces (1 MiB each) instead of doubling at
  //   each busy scavenge up to 16 MiB each, 32 MiB resident for good after the first burst
  //   (V8 src/heap/new-spaces.cc: the new space's Grow reads the factor each time).
  setFlagsFromString('--semi-space-growth-factor=1');
}

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
