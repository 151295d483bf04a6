import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * The documents hold together: every relative link of the README, the guides in docs/, the kernel
 * tests' README and the Cinder driver's README names a file that exists, and every `#anchor` a
 * heading of its target, slugged as GitHub slugs it. External (http, https, mailto) links are not
 * fetched. And the README stays a five-minute read whose test command is the one CI runs.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const DOCUMENTS = [
  'README.md',
  ...readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
  'test/kernel/README.md',
  'integrations/cinder/README.md',
];

/** The guides split out of the README; each opens, under its title, with whom it is for. */
const REFERENCE_DOCS = new Set(['docs/ARCHITECTURE.md', 'docs/DECISIONS.md', 'docs/KERNEL.md']);

/** The lines outside fenced code blocks, with their 1-based numbers. */
function proseLines(text: string): { line: string; n: number }[] {
  const out: { line: string; n: number }[] = [];
  let fence: string | null = null;
  text.split('\n').forEach((line, i) => {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (m) {
      if (fence === null) fence = m[1]!;
      else if (m[1]!.startsWith(fence)) fence = null;
      return;
    }
    if (fence === null) out.push({ line, n: i + 1 });
  });
  return out;
}

/** GitHub's heading anchor: lowercase, punctuation dropped (letters, digits, '-', '_' and spaces kept), spaces → '-'. */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link shows its text
    .replace(/<[^>]+>/g, '') // inline HTML tags
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '').replace(/ /g, '-');
}

/** Every heading's anchor in a Markdown file; a repeated heading gets -1, -2, … as on GitHub. */
function anchorsOf(text: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const { line } of proseLines(text)) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = slug(m[1]!);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** The targets of a file's inline links and link definitions, outside code. */
function linksOf(text: string): { target: string; n: number }[] {
  const out: { target: string; n: number }[] = [];
  for (const { line, n } of proseLines(text)) {
    const prose = line.replace(/(`+)[^`]*?\1/g, ''); // inline code spans
    for (const m of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ target: m[1]!, n });
    const def = /^\s{0,3}\[[^\]]+\]:\s+<?(\S+?)>?(?:\s|$)/.exec(prose);
    if (def) out.push({ target: def[1]!, n });
  }
  return out;
}

/** What is wrong with one link of `from` (a path from the repository's root), or null. */
function brokenLink(from: string, target: string): string | null {
  if (/^(https?|mailto):/i.test(target)) return null;
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return `unexpected scheme in ${target}`;
  const hash = target.indexOf('#');
  const file = decodeURIComponent(hash >= 0 ? target.slice(0, hash) : target);
  const anchor = hash >= 0 ? decodeURIComponent(target.slice(hash + 1)) : null;
  const resolved = file === '' ? path.join(ROOT, from) : path.resolve(ROOT, path.dirname(from), file);
  if (!resolved.startsWith(ROOT)) return `${target} leaves the repository`;
  if (!existsSync(resolved)) return `${target}: no file ${path.relative(ROOT, resolved)}`;
  if (anchor === null) return null;
  if (!resolved.endsWith('.md')) return `${target}: an anchor into a file that is not Markdown`;
  const anchors = anchorsOf(readFileSync(resolved, 'utf8'));
  if (!anchors.has(anchor)) return `${target}: no heading #${anchor} in ${path.relative(ROOT, resolved)}`;
  return null;
}

describe('documentation links', () => {
  it('slugs headings as GitHub does', () => {
    assert.equal(slug('The matrix (`GET /v1/health/multipath`)'), 'the-matrix-get-v1healthmultipath');
    assert.equal(slug('What the edge refuses, and in which order'), 'what-the-edge-refuses-and-in-which-order');
    assert.equal(
      slug('Installing the agent on a compute host (systemd)'),
      'installing-the-agent-on-a-compute-host-systemd',
    );
    assert.equal(slug('1. Native NVMe multipath in sysfs'), '1-native-nvme-multipath-in-sysfs');
    assert.equal(slug('Record first, then grant; revoke, then record'), 'record-first-then-grant-revoke-then-record');
    assert.equal(slug('`portalis status`'), 'portalis-status');
    assert.equal(slug('Timings (2 cores, Debian 12 host)'), 'timings-2-cores-debian-12-host');
  });

  it('finds links in prose and tables, not in code', () => {
    const text = [
      'See [a](a.md) and [b `c`](b.md#x "title"), `[not](code.md)`.',
      '| [t](t.md) | cell |',
      '```',
      '[fenced](fenced.md)',
      '```',
      '[def]: d.md',
      '<https://example.com>',
    ].join('\n');
    assert.deepEqual(
      linksOf(text).map((l) => l.target),
      ['a.md', 'b.md#x', 't.md', 'd.md'],
    );
  });

  it('reports a missing file and a missing anchor', () => {
    assert.match(brokenLink('README.md', 'docs/no-such-guide.md') ?? '', /no file docs\/no-such-guide\.md/);
    assert.match(brokenLink('README.md', 'docs/health.md#no-such-heading') ?? '', /no heading #no-such-heading/);
    assert.equal(brokenLink('docs/api.md', 'health.md#prometheus'), null);
    assert.equal(brokenLink('docs/api.md', 'https://example.com/x#y'), null);
  });

  for (const doc of DOCUMENTS) {
    it(`every relative link of ${doc} resolves`, () => {
      const broken = linksOf(readFileSync(path.join(ROOT, doc), 'utf8')).flatMap(({ target, n }) => {
        const why = brokenLink(doc, target);
        return why ? [`${doc}:${n}: ${why}`] : [];
      });
      assert.deepEqual(broken, []);
    });
  }

  it('every guide in docs/ opens with whom it is for', () => {
    const guides = DOCUMENTS.filter((d) => d.startsWith('docs/') && !REFERENCE_DOCS.has(d));
    assert.ok(guides.length >= 10, `only ${guides.length} guides`);
    for (const guide of guides) {
      const [title, blank, who] = readFileSync(path.join(ROOT, guide), 'utf8').split('\n');
      assert.match(title ?? '', /^# \S/, `${guide}: a title first`);
      assert.equal(blank, '', `${guide}: a blank line after the title`);
      assert.match(who ?? '', /^For /, `${guide}: the line after the title says whom it is for`);
    }
  });

  it('the README is a five-minute read that links every guide, and its test command is the one CI runs', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const lines = readme.split('\n').length - (readme.endsWith('\n') ? 1 : 0);
    assert.ok(lines <= 250, `README.md has ${lines} lines`);
    const linked = new Set(linksOf(readme).map((l) => l.target.split('#')[0]));
    for (const doc of DOCUMENTS.filter((d) => d.startsWith('docs/')))
      assert.ok(linked.has(doc), `README.md: no link to ${doc}`);
    assert.match(readme, /^npm install && npm test\b/m);
    assert.match(readFileSync(path.join(ROOT, '.ci/run'), 'utf8'), /^npm test 2>&1/m);
  });
});
