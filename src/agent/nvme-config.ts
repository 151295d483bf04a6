/**
 * The host's nvme-cli configuration, `/etc/nvme/config.json`, as far as in-band authentication
 * needs it: the host entry's `dhchap_key` and, per port of the cluster's subsystems, the
 * `dhchap_ctrl_key` (bidirectional). nvme-cli 2.x `connect` reads the file by default (its
 * `--config` option) and libnvme 1.3 takes the keys from it, so os-brick's plain `nvme connect`
 * and the agent's own connects authenticate without a secret on any command line
 * (docs/KERNEL.md §6, libnvme v1.3 `src/nvme/json.c`; docs/agent.md "In-band authentication").
 *
 * Pure functions: the file's text in, the new text out. Every other host entry, and every other
 * field of ours, is kept as it was.
 */
import { AgentError } from './errors.ts';
import type { PortalSpec } from './connection-data.ts';

export const NVME_CONFIG_JSON = '/etc/nvme/config.json';

/** What the host entry must say. */
export interface HostKeys {
  hostNqn: string;
  /** /etc/nvme/hostid: libnvme 1.3 ignores an entry whose hostid differs from the one it uses. */
  hostId: string | null;
  hostSecret: string;
  ctrlSecret: string;
  /** The subsystems and portals of this host's attachments (each port gets `dhchap_ctrl_key`). */
  subsystems: { nqn: string; portals: PortalSpec[] }[];
}

type Json = Record<string, unknown>;

/** Which file the installed nvme-cli reads: `json` (2.x, config.json) or `ini` (3.x, nvme-fabrics.conf). */
export function configFlavour(versionOutput: string): 'json' | 'ini' | null {
  const m = /nvme version v?(\d+)\./.exec(versionOutput);
  if (!m) return null;
  return Number(m[1]) >= 3 ? 'ini' : 'json';
}

function parse(text: string | null): Json[] {
  if (text === null || text.trim() === '') return [];
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    v = undefined;
  }
  // A file we cannot read is someone's; rewriting it would lose their entries.
  if (!Array.isArray(v) || v.some((e) => typeof e !== 'object' || e === null || Array.isArray(e)))
    throw new AgentError(
      'nvme_config_invalid',
      `${NVME_CONFIG_JSON} is not a JSON array of host entries; left as it is`,
    );
  return v as Json[];
}

const asArray = (v: unknown): Json[] =>
  Array.isArray(v) ? v.filter((e): e is Json => typeof e === 'object' && e !== null) : [];

/** The file's new text with this host's entry carrying `k` (the same text when nothing changes). */
export function withHostKeys(text: string | null, k: HostKeys): string {
  const hosts = parse(text);
  let entry = hosts.find((h) => h.hostnqn === k.hostNqn && (k.hostId === null || h.hostid === k.hostId));
  entry ??= hosts.find((h) => h.hostnqn === k.hostNqn);
  if (!entry) {
    entry = { hostnqn: k.hostNqn };
    hosts.push(entry);
  }
  if (k.hostId !== null) entry.hostid = k.hostId;
  entry.dhchap_key = k.hostSecret;
  const subsystems = asArray(entry.subsystems);
  for (const s of k.subsystems) {
    let se = subsystems.find((e) => e.nqn === s.nqn);
    if (!se) subsystems.push((se = { nqn: s.nqn }));
    const ports = asArray(se.ports);
    for (const p of s.portals) {
      const id = { transport: p.transport, traddr: p.address, trsvcid: String(p.port) };
      let pe = ports.find((e) => e.transport === id.transport && e.traddr === id.traddr && e.trsvcid === id.trsvcid);
      if (!pe) ports.push((pe = { ...id }));
      pe.dhchap_ctrl_key = k.ctrlSecret;
    }
    se.ports = ports;
  }
  // A port written for an attachment that has gone since keeps its controller key, which the target
  // no longer presents after a rotation; os-brick's plain connect to it would refuse the target. The
  // host entry is ours (its dhchap_key is), so every port carrying a controller key gets the current
  // one: matching only the `previous` pair missed rotations the agent never saw mid-way (one with
  // no live paths goes staged→idle at once, and `previous` is never delivered). A port without a
  // controller key is not one we wrote (every port we add carries one) and is left one-way.
  for (const se of subsystems)
    for (const pe of asArray(se.ports)) if (pe.dhchap_ctrl_key !== undefined) pe.dhchap_ctrl_key = k.ctrlSecret;
  entry.subsystems = subsystems;
  return `${JSON.stringify(hosts, null, 2)}\n`;
}
