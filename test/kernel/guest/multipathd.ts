/**
 * multipathd in the guest, for the DM scenarios (booted with `nvme_core.multipath=N`): started
 * with systemd-udevd as a host would run them, read through `multipathd show maps json`, and
 * stopped again.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runDir, sh, shAny, waitFor } from './lib.ts';
import { jsonOrText } from './nvme.ts';

export interface MapPath {
  dev: string;
  dm_st: string;
  chk_st: string;
  pri: number;
}

/** `multipathd show maps json` (multipath-tools 0.9.4; there is no `show paths json`). */
export interface MultipathdMaps {
  maps?: { name: string; uuid: string; sysfs: string; path_groups?: { pri: number; paths?: MapPath[] }[] }[];
}

/**
 * Writes `/etc/multipath.conf` (the guest's /etc is the overlay's: this never reaches the host),
 * starts systemd-udevd and multipathd (its log in the run folder) and waits until multipathd
 * answers.
 */
export async function startMultipathd(conf: string): Promise<ChildProcess> {
  writeFileSync('/etc/multipath.conf', conf);
  await sh('/lib/systemd/systemd-udevd', ['--daemon']);
  const log = openSync(path.join(runDir, 'multipathd.log'), 'w');
  const child = spawn('multipathd', ['-d', '-s'], { stdio: ['ignore', log, log], detached: true });
  await waitFor('multipathd to answer', async () => {
    const r = await shAny('multipathd', ['show', 'daemon']);
    return r.code === 0 && /running|idle/.test(r.stdout) ? r.stdout.trim() : undefined;
  });
  return child;
}

/** Shuts multipathd down, waits for it to exit, and stops systemd-udevd. */
export async function stopMultipathd(multipathd: ChildProcess): Promise<void> {
  await shAny('multipathd', ['shutdown']);
  await waitFor('multipathd to exit', () =>
    multipathd.exitCode !== null || multipathd.signalCode !== null ? true : undefined,
  );
  await shAny('udevadm', ['control', '--exit']);
}

export async function showMaps(): Promise<MultipathdMaps> {
  const r = await shAny('multipathd', ['show', 'maps', 'json']);
  return r.code === 0 ? (jsonOrText(r.stdout) as MultipathdMaps) : {};
}

/** The paths of `map` in multipathd's JSON, null when there is no such map. */
export function mapPaths(json: MultipathdMaps, map: string): MapPath[] | null {
  const m = json.maps?.find((x) => x.name === map);
  return m ? (m.path_groups?.flatMap((g) => g.paths ?? []) ?? []) : null;
}
