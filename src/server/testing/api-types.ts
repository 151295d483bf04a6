/**
 * `npm run gen:types`: writes the TypeScript types of `api-spec/portalis.yaml` to
 * `src/server/generated/api.ts` with openapi-typescript, so that the handlers, the presenters and
 * the agent's client are checked against the contract instead of restating it by hand.
 * `api-types.test.ts` generates again into memory and fails when the checked-in file differs: a spec
 * change without its types does not pass the suite (and so not CI).
 *
 * Kept under testing/: the build leaves it out, as the service never runs the generator.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';
import { SPEC_PATH } from '../spec.ts';

export const GENERATED_PATH = fileURLToPath(new URL('../generated/api.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const HEADER = `/**
 * Generated from api-spec/portalis.yaml by openapi-typescript (\`npm run gen:types\`); do not edit.
 * src/server/testing/api-types.test.ts fails when this file is not what the spec generates.
 */
`;

/** The formatter wraps code, not comments: the spec's one-line descriptions are wrapped here, at 116 columns. */
function wrapComments(ts: string, width = 116): string {
  const out: string[] = [];
  for (const line of ts.split('\n')) {
    const m = /^(\s*)(\/\*\* | \* )(.*?)( \*\/)?$/.exec(line);
    if (!m || line.length <= width) {
      out.push(line);
      continue;
    }
    const [, indent, lead, text, close] = m as unknown as [string, string, string, string, string | undefined];
    const words = text.split(' ');
    const lines: string[] = [];
    let cur = '';
    for (const w of words) {
      if (cur && indent.length + 3 + cur.length + 1 + w.length > width) {
        lines.push(cur);
        cur = w;
      } else cur = cur ? `${cur} ${w}` : w;
    }
    if (cur) lines.push(cur);
    if (lead === '/** ') out.push(`${indent}/**`);
    for (const l of lines) out.push(`${indent} * ${l}`);
    if (close) out.push(`${indent} */`);
  }
  return out.join('\n');
}

/**
 * openapi-typescript spells out what an operation does not have (`put?: never`, `cookie?: never`,
 * `requestBody?: never`, then `parameters: {}` when none is left) and gives every response an open
 * `headers` map: ~500 lines that say nothing the spec says, repeated per path and operation. Dropped,
 * so the file holds what the spec defines; `content?: never` stays, as a 204's only member.
 */
function dropPlaceholders(ts: string): string {
  return ts
    .replace(/^ *(?!content\?)[\w]+\?: never;\n/gm, '')
    .replace(/^ *headers: \{\n *\[name: string\]: unknown;\n *\};\n/gm, '')
    .replace(/^ *parameters: \{\n *\};\n/gm, '');
}

/** The file's text as `npm run gen:types` writes it: generated, comments wrapped, then formatted as the repo's code. */
export async function generateApiTypes(): Promise<string> {
  // `{ type: object }` without properties is an open object in the spec (`revoked: true`, a connector):
  // Record<string, unknown>, not openapi-typescript's default Record<string, never>.
  const ast = await openapiTS(pathToFileURL(SPEC_PATH), { emptyObjectsUnknown: true });
  const raw = HEADER + wrapComments(dropPlaceholders(astToString(ast)));
  const biome = createRequire(import.meta.url).resolve('@biomejs/biome/bin/biome');
  const r = spawnSync(process.execPath, [biome, 'format', '--stdin-file-path=src/server/generated/api.ts'], {
    cwd: ROOT,
    input: raw,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`biome format failed: ${r.stderr}`);
  return r.stdout;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(GENERATED_PATH, await generateApiTypes());
  console.log(`wrote ${GENERATED_PATH}`);
}
