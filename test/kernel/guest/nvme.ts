/**
 * Guest-side NVMe helpers for the kernel scenarios: nvme-cli calls and sysfs views of
 * controllers and block devices, as the kernel (6.1) shows them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RunResult } from '../harness/exec.ts';
import { check, checkEqual, list, readSys, sh, shAny, waitFor } from './lib.ts';

export const HOST_NQN = 'nqn.2014-08.org.nvmexpress:uuid:3c1e6a52-8d0b-4f7e-9a21-5b6c7d8e9f01';
export const HOST_ID = '3c1e6a52-8d0b-4f7e-9a21-5b6c7d8e9f01';

export interface ConnectOptions {
  nqn: string;
  address: string;
  port: number;
  /** Default `tcp`. */
  transport?: string;
  hostNqn?: string;
  hostId?: string;
  /** More options, before `-o json` (secrets, `--config`, `-D`). */
  extra?: string[];
}

/** `nvme connect … -o json`; the caller interprets the result. */
export function nvmeConnect(o: ConnectOptions): Promise<RunResult> {
  return shAny('nvme', [
    'connect',
    '-t',
    o.transport ?? 'tcp',
    '-a',
    o.address,
    '-s',
    String(o.port),
    '-n',
    o.nqn,
    '-q',
    o.hostNqn ?? HOST_NQN,
    '-I',
    o.hostId ?? HOST_ID,
    '--ctrl-loss-tmo=-1',
    '--reconnect-delay=1',
    ...(o.extra ?? []),
    '-o',
    'json',
  ]);
}

/** `traddr=127.0.0.1,trsvcid=4420,src_addr=127.0.0.1` → fields (src_addr included). */
export function parseAddress(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split(',')
      .map((kv) => kv.split('='))
      .filter((p) => p.length === 2)
      .map(([k, v]) => [k.trim(), v.trim()]),
  );
}

export interface Controller {
  name: string;
  state: string | null;
  address: Record<string, string>;
  subsysnqn: string | null;
}

export function controllers(nqn?: string): Controller[] {
  return list('/sys/class/nvme')
    .map((name) => {
      const dir = `/sys/class/nvme/${name}`;
      return {
        name,
        state: readSys(`${dir}/state`),
        address: parseAddress(readSys(`${dir}/address`) ?? ''),
        subsysnqn: readSys(`${dir}/subsysnqn`),
      };
    })
    .filter((c) => nqn === undefined || c.subsysnqn === nqn);
}

/** Every attribute file of a sysfs folder (not following subfolders), for observations. */
export function sysAttrs(dir: string, names?: string[]): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const n of names ?? list(dir)) out[n] = readSys(`${dir}/${n}`);
  return out;
}

/** Visible NVMe block devices (heads, or plain namespaces without native multipath). */
export function nvmeDisks(): string[] {
  return list('/sys/block').filter((d) => /^nvme\d+n\d+$/.test(d));
}

/** Hidden per-path devices of native multipath (`nvme<subsys>c<ctrl>n<nsid>`). */
export function pathDevices(): string[] {
  return list('/sys/block').filter((d) => /^nvme\d+c\d+n\d+$/.test(d));
}

/**
 * The controller behind a per-path device, or behind a plain namespace when native multipath
 * is off (`/sys/block/<dev>/device` → ../../nvmeX). A head's `device` is its nvme-subsysN.
 */
export function controllerOf(dev: string): string {
  return path.basename(readlinkSync(`/sys/block/${dev}/device`));
}

/**
 * A recognisable pattern: every 4 KiB block starts with the tag and its block number, over one
 * random 4 KiB block (cheap under emulation, where generating and hashing megabytes of random
 * data takes seconds). A block written to the wrong offset or a stale read shows.
 */
function pattern(bytes: number, tag: string): Buffer {
  const base = randomBytes(4096);
  const buf = Buffer.allocUnsafe(bytes);
  for (let off = 0; off < bytes; off += 4096) {
    base.copy(buf, off);
    buf.write(`${tag}:${off / 4096};`, off);
  }
  return buf;
}

/**
 * Writes `mib` MiB to `dev` with O_DIRECT and reads it back with O_DIRECT (dd, as a host tool
 * would); returns the durations. Block size 1 MiB: a multiple of any logical block size.
 */
export async function directIoRoundTrip(
  dev: string,
  mib: number,
  tag: string,
): Promise<{ writeMs: number; readMs: number }> {
  const file = `/tmp/${tag}.pattern`;
  const back = `/tmp/${tag}.readback`;
  const data = pattern(mib << 20, tag);
  writeFileSync(file, data);
  let t = performance.now();
  await sh('dd', [`if=${file}`, `of=${dev}`, 'bs=1M', `count=${mib}`, 'oflag=direct', 'status=none'], 60_000);
  const writeMs = Math.round(performance.now() - t);
  t = performance.now();
  await sh('dd', [`if=${dev}`, `of=${back}`, 'bs=1M', `count=${mib}`, 'iflag=direct', 'status=none'], 60_000);
  const readMs = Math.round(performance.now() - t);
  check(readFileSync(back).equals(data), `data read back from ${dev} matches what was written`);
  return { writeMs, readMs };
}

/**
 * The host's NVMe identity as a connector reports it: `/etc/nvme/hostnqn` and
 * `/etc/nvme/hostid`, created (as nvme-cli's packaging does) when missing. The guest's /etc is
 * the tmpfs overlay's, so nothing reaches the host's files.
 */
export async function hostIdentity(): Promise<{ hostNqn: string; hostId: string; created: boolean }> {
  let hostNqn = readSys('/etc/nvme/hostnqn');
  let hostId = readSys('/etc/nvme/hostid');
  const created = !hostNqn;
  if (!hostNqn) {
    hostNqn = (await sh('nvme', ['gen-hostnqn'])).trim();
    mkdirSync('/etc/nvme', { recursive: true });
    writeFileSync('/etc/nvme/hostnqn', `${hostNqn}\n`);
  }
  if (!hostId) {
    hostId = /uuid:([0-9a-f-]{36})$/i.exec(hostNqn)?.[1] ?? randomUUID();
    writeFileSync('/etc/nvme/hostid', `${hostId}\n`);
  }
  return { hostNqn, hostId, created };
}

/** The visible device whose namespace UUID is `uuid` (a native-multipath head), if exactly one. */
export function headByUuid(uuid: string): string | undefined {
  const found = nvmeDisks().filter((d) => readSys(`/sys/block/${d}/uuid`) === uuid.toLowerCase());
  return found.length === 1 ? found[0] : undefined;
}

/** The hidden per-path devices behind head `nvme<S>n<N>`: `nvme<S>c<C>n<N>`. */
export function pathsOfHead(head: string): string[] {
  const m = /^nvme(\d+)n(\d+)$/.exec(head);
  if (!m) throw new Error(`${head} is not a head device name`);
  const re = new RegExp(`^nvme${m[1]}c\\d+n${m[2]}$`);
  return pathDevices().filter((d) => re.test(d));
}

export interface PathView {
  dev: string;
  controller: string;
  trsvcid: string;
  controllerState: string | null;
  anaState: string | null;
}

/** Each path of a head: its controller, the controller's port and state, the path's ANA state. */
export function pathViews(head: string): PathView[] {
  return pathsOfHead(head).map((dev) => {
    const controller = controllerOf(dev);
    const c = controllers().find((x) => x.name === controller);
    return {
      dev,
      controller,
      trsvcid: c?.address.trsvcid ?? '?',
      controllerState: c?.state ?? null,
      anaState: readSys(`/sys/block/${dev}/ana_state`),
    };
  });
}

/** The kernel log's lines, for `kernelLogSince`. */
export async function kernelLog(): Promise<string[]> {
  return (await sh('dmesg', [])).split('\n').filter(Boolean);
}

/** Lines logged after `mark` (the length of an earlier `kernelLog()`) that report I/O errors. */
export async function ioErrorsSince(mark: number): Promise<string[]> {
  return (await kernelLog())
    .slice(mark)
    .filter((l) => /I\/O error|critical (medium|target) error|blk_update_request/.test(l));
}

/** Parses nvme-cli JSON output, keeping the raw text when it is not JSON. */
export function jsonOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text.trim();
  }
}

/** Controllers of the subsystem per port (trsvcid): names. */
export function controllersByPort(nqn: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const c of controllers(nqn)) (out[c.address.trsvcid ?? '?'] ??= []).push(c.name);
  return out;
}

/** Exactly one live controller per portal, and no other controller of the subsystem. */
export function checkOneControllerPerPortal(
  nqn: string,
  portals: [string, number, string][],
): Record<string, string[]> {
  const byPort = controllersByPort(nqn);
  checkEqual(Object.keys(byPort).sort(), portals.map((p) => String(p[1])).sort(), 'ports with a controller');
  for (const [port, names] of Object.entries(byPort))
    checkEqual(names.length, 1, `controllers to port ${port} (${names.join(', ')})`);
  for (const c of controllers(nqn)) checkEqual(c.state, 'live', `${c.name} state`);
  return byPort;
}

/** Waits (10 s) until the subsystem has no controller left, then checks that its head disk went too. */
export async function waitAllDisconnected(nqn: string, head: string): Promise<void> {
  await waitFor(
    'no controller of the subsystem',
    () => (controllers(nqn).length === 0 ? true : undefined),
    10_000,
    () => controllers(nqn),
  );
  check(!existsSync(`/sys/block/${head}`), `${head} is gone`);
}
