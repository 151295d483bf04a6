/**
 * Bundles a guest script (TypeScript, with its imports from src/) into one ES module with
 * esbuild on the host. In the guest, `node --import tsx` costs about 2 s of emulated CPU before
 * the first line runs; a plain `node bundle.mjs` starts in about 0.3 s.
 *
 * esbuild is tsx's own dependency, so it is resolved from tsx's folder rather than declared
 * again.
 */
import { createRequire } from 'node:module';
import path from 'node:path';

interface Esbuild {
  build(options: Record<string, unknown>): Promise<{ errors: unknown[] }>;
}

export async function bundleGuestScript(repoRoot: string, script: string, outfile: string): Promise<void> {
  const require = createRequire(path.join(repoRoot, 'node_modules', 'tsx', 'package.json'));
  const esbuild = require('esbuild') as Esbuild;
  await esbuild.build({
    entryPoints: [path.join(repoRoot, script)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    sourcemap: 'inline',
    logLevel: 'error',
  });
}
