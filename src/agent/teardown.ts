/**
 * The pieces of a safe teardown: is a block device in use, flushing it, and disconnecting one
 * controller with the result checked in sysfs (nvme-cli exits 0 when `disconnect -d` fails).
 */
import { poll } from '../shared/poll.ts';
import { AgentError } from './errors.ts';
import type { HostPort } from './host/port.ts';
import { classify, disconnectArgs } from './nvme-cli.ts';
import { parseMountinfo } from './procfs.ts';
import { type AgentContext, traced } from './context.ts';
import { type Controller, readController } from './sysfs.ts';

export interface DeviceUsage {
  /** Processes with the device (or a partition of it) open, as `pid`. */
  openBy: string[];
  mountedAt: string[];
  /** `holders/` entries: dm maps, LVM, md on top of the device or a partition. */
  holders: string[];
  swap: boolean;
}

export function isInUse(u: DeviceUsage): boolean {
  return u.openBy.length > 0 || u.mountedAt.length > 0 || u.holders.length > 0 || u.swap;
}

export function describeUsage(dev: string, u: DeviceUsage): string {
  const why: string[] = [];
  if (u.mountedAt.length) why.push(`mounted at ${u.mountedAt.join(', ')}`);
  if (u.openBy.length) why.push(`open by pid ${u.openBy.join(', ')}`);
  if (u.holders.length) why.push(`held by ${u.holders.join(', ')}`);
  if (u.swap) why.push('in use as swap');
  return `${dev} is ${why.join('; ')}`;
}

/**
 * Who uses a block device and its partitions. Mounts are matched by `major:minor` in
 * /proc/self/mountinfo (and by source, since btrfs reports an anonymous 0:N device); swap has
 * no process fd, so /proc/swaps is read too; open files come from the /proc/<pid>/fd links.
 */
export async function deviceUsage(host: HostPort, block: string, aliases: string[] = []): Promise<DeviceUsage> {
  const parts = (await host.readdir(`/sys/block/${block}`)).filter(
    (n) => n.startsWith(block) && /p?\d+$/.test(n.slice(block.length)),
  );
  const names = [block, ...parts];
  const devs = new Set<string>();
  const holders: string[] = [];
  for (const n of names) {
    const dir = n === block ? `/sys/block/${block}` : `/sys/block/${block}/${n}`;
    const dev = (await host.readFile(`${dir}/dev`))?.trim();
    if (dev) devs.add(dev);
    for (const h of await host.readdir(`${dir}/holders`)) holders.push(h);
  }
  const paths = new Set([...names.map((n) => `/dev/${n}`), ...aliases]);
  const isOurs = async (p: string) => paths.has(p) || paths.has((await host.realpath(p)) ?? '');

  const mountedAt: string[] = [];
  for (const m of parseMountinfo((await host.readFile('/proc/self/mountinfo')) ?? '')) {
    if (devs.has(m.majMin) || (m.source.startsWith('/dev/') && (await isOurs(m.source)))) mountedAt.push(m.mountPoint);
  }

  let swap = false;
  for (const line of ((await host.readFile('/proc/swaps')) ?? '').split('\n').slice(1)) {
    const p = line.split(/\s+/)[0];
    if (p && (await isOurs(p))) swap = true;
  }

  const openBy: string[] = [];
  const self = String(host.pid());
  for (const pid of await host.readdir('/proc')) {
    if (!/^\d+$/.test(pid) || pid === self) continue;
    const fds = await host.readdir(`/proc/${pid}/fd`);
    const links = await Promise.all(fds.map((fd) => host.readlink(`/proc/${pid}/fd/${fd}`)));
    if (links.some((l) => l !== null && paths.has(l))) openBy.push(pid);
  }
  return { openBy, mountedAt, holders, swap };
}

/** `blockdev --flushbufs`: writes dirty buffers out before the paths go (os-brick bug #1903032). */
export async function flush(ctx: AgentContext, devPath: string): Promise<void> {
  const r = await ctx.host.run('blockdev', ['--flushbufs', devPath], { timeoutMs: ctx.commandTimeoutMs });
  if (r.code !== 0)
    throw new AgentError(
      'teardown_failed',
      `blockdev --flushbufs ${devPath} failed: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`,
    );
}

const DISCONNECT_ATTEMPTS = 3;

/** Exit status of a command killed by a signal (128 + signal), as the host port reports it. */
function diedOfSignal(code: number): boolean {
  return code > 128 && code < 160;
}

/** Still the same controller? (Names are reused: a new connect may get the freed `nvmeN`.) */
function sameController(a: Controller, b: Controller | null): boolean {
  return (
    b !== null && a.nqn === b.nqn && a.address.traddr === b.address.traddr && a.address.trsvcid === b.address.trsvcid
  );
}

/**
 * Removes one controller, then sysfs decides whether it went. First by writing `1` to its
 * `delete_controller` attribute, which is what `nvme disconnect -d` itself does (libnvme
 * `nvme_disconnect_ctrl`; the kernel's `nvme_sysfs_delete`, drivers/nvme/host/core.c, deletes a
 * fabrics controller and returns when it is gone): no nvme-cli process to start, and none of
 * libnvme 1.3's scan of all of sysfs that aborts when another controller vanishes under it
 * (libnvme #840). Where the attribute cannot be written, `nvme disconnect -d <ctrl>`: nvme-cli
 * prints a failed disconnect and still exits 0 (nvme-cli issue #237), and `-d` of an unknown
 * name is not an error for us.
 */
export async function disconnectController(ctx: AgentContext, ctrl: Controller): Promise<void> {
  const deleted = await traced(ctx, `delete_controller ${ctrl.name}`, async () => {
    // Names are reused: never delete a controller that took this one's name meanwhile.
    if (!sameController(ctrl, await readController(ctx.host, ctrl.name))) return true;
    try {
      await ctx.host.writeFile(`/sys/class/nvme/${ctrl.name}/delete_controller`, '1');
      return true;
    } catch (e) {
      ctx.log.warn(
        { controller: ctrl.name, err: (e as Error).message },
        'delete_controller not writable; disconnecting with nvme-cli',
      );
      return false;
    }
  });
  if (!deleted) return disconnectWithNvmeCli(ctx, ctrl);
  await waitGone(ctx, ctrl, `writing delete_controller of ${ctrl.name} returned`, '');
}

async function disconnectWithNvmeCli(ctx: AgentContext, ctrl: Controller): Promise<void> {
  const run = () =>
    traced(ctx, `nvme disconnect -d ${ctrl.name}`, () =>
      ctx.host.run('nvme', disconnectArgs(ctrl.name), { timeoutMs: ctx.commandTimeoutMs }),
    );
  let r = await run();
  // Killed by a signal (exit 129–159) with the controller still there: nvme-cli died before it
  // disconnected anything (libnvme 1.3 aborts on a double free when a controller directory
  // vanishes during its sysfs scan, libnvme #840; any other tool may be removing one). Run it
  // again rather than wait for a disconnect that was never asked for.
  for (
    let attempt = 2;
    attempt <= DISCONNECT_ATTEMPTS &&
    diedOfSignal(r.code) &&
    sameController(ctrl, await readController(ctx.host, ctrl.name));
    attempt++
  ) {
    ctx.log.warn(
      { controller: ctrl.name, exit: r.code, err: (r.stderr || r.stdout).trim() },
      'nvme disconnect died before disconnecting; running it again',
    );
    r = await run();
  }
  const outcome = classify(r);
  if (outcome.kind === 'not-installed')
    throw new AgentError('command_unavailable', `nvme-cli is not installed: ${outcome.message}`);
  const said = 'message' in outcome ? outcome.message : `exit ${r.code}`;
  await waitGone(ctx, ctrl, `nvme disconnect -d ${ctrl.name} exited ${r.code}`, `: ${said}`);
}

/** Waits (5 s) until sysfs no longer shows the controller; else a teardown error saying what was done. */
async function waitGone(ctx: AgentContext, ctrl: Controller, what: string, detail: string): Promise<void> {
  const gone = await traced(ctx, `wait ${ctrl.name} gone`, () =>
    poll<true>(
      async () =>
        sameController(ctrl, await readController(ctx.host, ctrl.name))
          ? { done: false, last: null }
          : { done: true, value: true },
      { deadlineMs: 5000, intervalMs: 10, backoff: 2, maxIntervalMs: 1000, clock: ctx.host.clock },
    ),
  );
  if (!gone.done) {
    const still = await readController(ctx.host, ctrl.name);
    throw new AgentError(
      'teardown_failed',
      `${what} but ${ctrl.name} is still present (state ${still?.state ?? 'unknown'})${detail}`,
    );
  }
}
