/**
 * Readers for /proc text formats the agent needs.
 */

export interface MountEntry {
  /** `major:minor` of the mounted device (anonymous `0:N` for btrfs and virtual filesystems). */
  majMin: string;
  mountPoint: string;
  fstype: string;
  source: string;
}

/** mountinfo escapes space, tab, newline and backslash as octal (`\040`). */
function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Parses /proc/self/mountinfo: `id parent maj:min root mountpoint options [optional…] - fstype source superopts`.
 * The optional fields vary in number, so the fields after them are found from the `-` separator.
 */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 5 || sep < 0) continue;
    out.push({
      majMin: f[2]!,
      mountPoint: unescapeOctal(f[4]!),
      fstype: f[sep + 1] ?? '',
      source: unescapeOctal(f[sep + 2] ?? ''),
    });
  }
  return out;
}
