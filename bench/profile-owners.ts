/**
 * `node --import tsx bench/profile-owners.ts <file.cpuprofile> [calls]`: a V8 CPU profile (from
 * `npm run bench -- storm --cpu-prof <dir>`) summed by owner, in ms per call when `calls` is given.
 * Each sample is charged to the nearest owner on its stack, leaf first: a package of
 * node_modules (the socket write pg asks for is pg's), else the service's own layer (src/server,
 * src/store, ...), else "node internals"; V8's own entries ((garbage collector), (program),
 * (idle)) and the socket writes stand alone. The format is Chrome DevTools' Profile object: nodes with parent links
 * through `children`, `samples` (node ids) and `timeDeltas` (µs)
 * (https://chromedevtools.github.io/devtools-protocol/tot/Profiler/#type-Profile).
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

const SOCKET_WRITES = new Set(['writev', 'writeLatin1String', 'writeUtf8String', 'writeBuffer']);

function ownerOf(url: string, fn: string): string | undefined {
  if (!url) return fn.startsWith('(') && fn !== '(root)' ? fn : undefined;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + '/node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  const src = /\/(?:dist\/)?src\/([^/]+)\//.exec(url);
  if (src) return `portalis src/${src[1]}`;
  return undefined;
}

export function owners(profile: {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const total = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    let owner: string | undefined;
    for (let at: number | undefined = id; at !== undefined && !owner; at = parent.get(at)) {
      const f = byId.get(at)!.callFrame;
      owner = ownerOf(f.url, f.functionName);
    }
    // The socket writes stand apart: V8's sampler ticks in wall time, so on a loaded machine a
    // thread preempted in the system call (a loopback send wakes the receiver) is charged there.
    const leaf = byId.get(id)!.callFrame;
    const write = !leaf.url && SOCKET_WRITES.has(leaf.functionName);
    const key = write ? 'socket writes' : (owner ?? 'node internals');
    total.set(key, (total.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  return total;
}

if (process.argv[1]?.endsWith('profile-owners.ts')) {
  const [file, callsArg] = process.argv.slice(2);
  if (!file) {
    console.error('usage: bench/profile-owners.ts <file.cpuprofile> [calls]');
    process.exit(2);
  }
  const calls = Number(callsArg ?? 1);
  const total = owners(JSON.parse(readFileSync(file, 'utf8')));
  const busy = [...total].filter(([k]) => k !== '(idle)').reduce((s, [, v]) => s + v, 0);
  console.log(`busy ${(busy / calls).toFixed(3)} ms${calls > 1 ? ' per call' : ''}`);
  for (const [k, v] of [...total].sort((a, b) => b[1] - a[1]))
    console.log(`${(v / calls).toFixed(3).padStart(9)}  ${((100 * v) / busy).toFixed(1).padStart(5)} %  ${k}`);
}
