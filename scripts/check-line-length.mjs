#!/usr/bin/env node
// The line length the code keeps: no line of a tracked source or document over 140 characters
// (the formatter wraps code at 120; this catches the long strings and comments it cannot wrap).
// Markdown table rows are exempt: a row cannot be wrapped. Biome has no such rule, hence this.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const MAX = 140;
const CHECKED = /\.(ts|mjs|js|sh|ya?ml|md)$/;
const SKIPPED = /^(test\/fixtures\/|package-lock\.json$)/;

const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard'], { encoding: 'utf8' })
  .split('\n')
  .filter((f) => f && CHECKED.test(f) && !SKIPPED.test(f));
const long = [];
for (const f of files) {
  let text;
  try {
    text = readFileSync(f, 'utf8');
  } catch {
    continue; // deleted in the working tree
  }
  text.split('\n').forEach((line, i) => {
    if ([...line].length > MAX && !(f.endsWith('.md') && line.trimStart().startsWith('|')))
      long.push(`${f}:${i + 1}: ${[...line].length} characters`);
  });
}
if (long.length) {
  console.error(`${long.length} line(s) longer than ${MAX} characters:\n${long.join('\n')}`);
  process.exit(1);
}
console.log(`line length: ${files.length} files, none over ${MAX} characters`);
