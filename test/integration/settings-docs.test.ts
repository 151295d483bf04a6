import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AGENT_SETTINGS, DAEMON_SETTINGS } from '../../src/agent/config.ts';
import { SETTINGS } from '../../src/config.ts';
import { type SettingsTable, settingsHelp, settingsMarkdown } from '../../src/shared/env.ts';
import { SIM_SETTINGS } from '../../src/sim/server.ts';

/**
 * Each program's table of settings in its guide is the table its code reads (variable, default,
 * meaning, in the same order): the code's table is the source, so a setting added, removed or
 * re-defaulted in code without its guide fails here, with the rows to paste.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const PROGRAMS: [string, SettingsTable][] = [
  ['docs/configuration.md', SETTINGS],
  ['docs/agent.md', { ...DAEMON_SETTINGS, ...AGENT_SETTINGS }],
  ['docs/simulator.md', SIM_SETTINGS],
];

/** A Markdown table row as its trimmed cells (the separator row dropped). */
const cells = (row: string) =>
  row
    .replace(/^\||\|$/g, '')
    .split('|')
    .map((c) => c.trim());
const isSeparator = (row: string[]) => row.every((c) => /^:?-+:?$/.test(c));

/** The rows of the guide's table that holds the first variable of `table`. */
function docTable(file: string, table: SettingsTable): string[][] {
  const lines = readFileSync(`${ROOT}${file}`, 'utf8').split('\n');
  const first = `\`${Object.keys(table)[0]}\``;
  const at = lines.findIndex((l) => l.startsWith('|') && cells(l)[0] === first);
  assert.ok(at >= 0, `${file} has no table row for ${first}`);
  let start = at;
  while (lines[start - 1]?.startsWith('|')) start--;
  let end = at;
  while (lines[end + 1]?.startsWith('|')) end++;
  return lines
    .slice(start, end + 1)
    .map(cells)
    .filter((r) => !isSeparator(r));
}

describe('settings: the guides show the tables the programs read', () => {
  for (const [file, table] of PROGRAMS) {
    it(`${file}: every variable with its default and meaning, as in the code`, () => {
      const want = settingsMarkdown(table);
      assert.deepEqual(
        docTable(file, table),
        want.map(cells).filter((r) => !isSeparator(r)),
        `${file}'s table differs from the code's; the code's is:\n${want.join('\n')}`,
      );
    });
  }

  it('--help prints every variable once, without Markdown', () => {
    const help = settingsHelp(SIM_SETTINGS);
    assert.equal(help.split('\n').length, Object.keys(SIM_SETTINGS).length);
    assert.match(help, /PORTALIS_SIM_BASE_PORT\s+4420\s+node i serves NVMe\/TCP on base \+ i$/m);
    assert.match(help, /PORTALIS_SIM_DATA_PLANE\s+memory\s+memory \(nothing/);
    assert.doesNotMatch(help, /`/);
  });
});
