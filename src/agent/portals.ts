/**
 * Portals and their controllers: which portal already has a controller, connecting the ones that
 * do not, and rescanning. Shared by native, single and DM attachment.
 */
import { type PortalSpec, type TargetSpec, portalLabel } from './connection-data.ts';
import { AgentError } from './errors.ts';
import { type AgentContext, traced } from './context.ts';
import { classify, connectArgs, parseConnectedDevice, rescanArgs } from './nvme-cli.ts';
import { type Controller, canonicalAddress, listControllers, readController } from './sysfs.ts';

export interface PortalState {
  portal: PortalSpec;
  controller: Controller | null;
}

/** Controller states in which the kernel itself keeps (re)connecting: never connect on top. */
const KERNEL_RETRYING = new Set(['live', 'connecting', 'resetting', 'new']);

/**
 * Does the controller serve this portal for this host? Matching is on transport, address
 * (canonical, so `[fd00::1]` = `fd00:0::1`) and port; `src_addr`/`host_traddr` are ignored.
 * The host NQN is compared only where sysfs has it (not every kernel does; os-brick matches
 * anything then).
 */
export function servesPortal(c: Controller, p: PortalSpec, hostNqn: string | null): boolean {
  if (c.transport !== p.transport) return false;
  if (canonicalAddress(c.address.traddr) !== canonicalAddress(p.address)) return false;
  if (c.address.trsvcid !== null && Number(c.address.trsvcid) !== p.port) return false;
  return hostNqn === null || c.hostNqn === null || c.hostNqn === hostNqn;
}

/** One text per portal: transport, canonical address and port (for sets and equality). */
export function portalKey(p: PortalSpec): string {
  return `${p.transport}:${canonicalAddress(p.address)}:${p.port}`;
}

export async function portalStates(
  ctx: AgentContext,
  target: TargetSpec,
  hostNqn: string | null,
): Promise<PortalState[]> {
  const ctrls = await listControllers(ctx.host, target.nqn);
  return target.portals.map((portal) => ({
    portal,
    // A controller being deleted is as good as gone; prefer one that is not.
    controller:
      ctrls.find((c) => servesPortal(c, portal, hostNqn) && KERNEL_RETRYING.has(c.state ?? '')) ??
      ctrls.find((c) => servesPortal(c, portal, hostNqn)) ??
      null,
  }));
}

export interface PortalFailure {
  portal: string;
  message: string;
  /** The kernel log says the target refused DH-HMAC-CHAP authentication (authRefusal). */
  authRejected?: boolean;
}

/**
 * Linux 6.1's lines for a connect the target refused at authentication (docs/KERNEL.md §6, seen
 * on 6.1): no secret (`qid 0: no key`), a wrong one (`qid 0: authentication failed`), a target
 * with the wrong controller secret (`qid 0: controller authentication failed`), or a host kernel
 * without CONFIG_NVME_AUTH (`qid 0: authentication setup failed`); the connect's status 0x191
 * (NVME_SC_AUTH_REQUIRED) shows as `failed to connect queue: 0 ret=401`.
 */
const AUTH_REFUSED = new RegExp(
  'nvme nvme\\d+: (qid 0: (no key|authentication failed|controller authentication failed|authentication setup failed)' +
    '|failed to connect queue: 0 ret=401)',
);

/**
 * Whether the connect just refused was refused at authentication. nvme-cli 2.3 says only
 * `Failed to write to /dev/nvme-fabrics: Input/output error` (exit 1): the reason is in the kernel
 * log alone, so the last lines of `dmesg` are read (the agent runs as root; dmesg_restrict does not
 * stop it). A refusal leaves no controller behind, so there is nothing to undo.
 */
async function authRefusal(ctx: AgentContext, message: string): Promise<boolean> {
  if (!/input\/output error|failed to write to nvme-fabrics device/i.test(message)) return false;
  const r = await ctx.host.run('dmesg', [], { timeoutMs: ctx.commandTimeoutMs });
  if (r.code !== 0) return false;
  return r.stdout
    .split('\n')
    .slice(-20)
    .some((l) => AUTH_REFUSED.test(l));
}

export interface ConnectOutcome {
  states: PortalState[];
  /** Controllers that were already there before this call (candidates for a rescan). */
  preexisting: Set<string>;
  failures: PortalFailure[];
}

function needsConnect(s: PortalState): boolean {
  return s.controller === null || !KERNEL_RETRYING.has(s.controller.state ?? '');
}

/**
 * Connects the portals that have no controller. `all`: every one, in parallel (native, DM);
 * `first`: nothing if any portal has a controller, else one portal after the other until one
 * connects (single). Live and connecting controllers are left to the kernel (ceph-csi's NVMe-oF initiator skips them too):
 * reconnecting is its job while ctrl-loss-tmo runs. A failed portal is only recorded; the next
 * pass tries it again, so a volume is never left single-path for good (the Lightbits Proxmox
 * plugin, pve-lightbits, retries missing endpoints the same way).
 */
export async function connectPortals(
  ctx: AgentContext,
  target: TargetSpec,
  hostNqn: string | null,
  policy: 'all' | 'first',
  explicitHostNqn?: string,
): Promise<ConnectOutcome> {
  const before = await traced(ctx, 'sysfs: controllers', () => portalStates(ctx, target, hostNqn));
  const preexisting = new Set(before.flatMap((s) => (s.controller && !needsConnect(s) ? [s.controller.name] : [])));
  const failures: PortalFailure[] = [];
  const after = new Map<PortalState, Controller | null>();

  const connectOne = async (s: PortalState): Promise<boolean> => {
    const label = portalLabel(s.portal);
    const r = await traced(ctx, `nvme connect ${label}`, () =>
      ctx.host.run('nvme', connectArgs(target.nqn, s.portal, ctx.tunables, explicitHostNqn), {
        timeoutMs: ctx.commandTimeoutMs,
      }),
    );
    const outcome = classify(r);
    if (outcome.kind === 'not-installed')
      throw new AgentError('command_unavailable', `nvme-cli is not installed: ${outcome.message}`);
    if (outcome.kind === 'ok' || outcome.kind === 'already-connected') {
      // Trust sysfs, not the exit status: "already connected" only means nvme-cli thought so.
      // nvme-cli names the new controller on stdout (`device: nvme3`, nvme-cli 2.x fabrics.c);
      // reading just that one saves a scan of every controller per portal.
      const named = outcome.kind === 'ok' ? parseConnectedDevice(r.stdout) : null;
      const c = named ? await readController(ctx.host, named) : null;
      const ctrl =
        c && c.nqn === target.nqn && servesPortal(c, s.portal, hostNqn)
          ? c
          : ((await portalStates(ctx, { ...target, portals: [s.portal] }, hostNqn))[0]?.controller ?? null);
      if (ctrl) {
        after.set(s, ctrl);
        return true;
      }
      failures.push({ portal: label, message: `nvme connect reported ${outcome.kind} but no controller is in sysfs` });
      return false;
    }
    // nvme-cli 2.3 / libnvme 1.3 fail a connect the kernel made when their lookup of the new
    // controller's subsystem directory runs before the kernel linked it ("failed to lookup
    // subsystem for controller nvmeN", libnvme tree.c `nvme_ctrl_lookup_subsystem_name`; seen
    // with parallel connects, as in blktests nvme/030): sysfs says whether a controller is there.
    const there = (await portalStates(ctx, { ...target, portals: [s.portal] }, hostNqn))[0]?.controller ?? null;
    if (there && KERNEL_RETRYING.has(there.state ?? '')) {
      ctx.log.info(
        { portal: label, controller: there.name, err: outcome.message },
        'nvme connect reported a failure but the controller is in sysfs; adopted',
      );
      after.set(s, there);
      return true;
    }
    const authRejected = outcome.kind === 'failed' && (await authRefusal(ctx, `${r.stderr}\n${r.stdout}`));
    failures.push({ portal: label, message: outcome.message, ...(authRejected ? { authRejected } : {}) });
    ctx.log.warn(
      { portal: label, nqn: target.nqn, err: outcome.message },
      'nvme connect failed; will retry on a later pass',
    );
    return false;
  };

  const missing = before.filter(needsConnect);
  if (policy === 'all') {
    await Promise.all(missing.map(connectOne));
  } else if (before.every(needsConnect)) {
    for (const s of before) if (await connectOne(s)) break;
  }
  if (!missing.length) return { states: before, preexisting, failures };
  // What each connect left in sysfs, with the portals nothing was done to as they were: no
  // second scan of every controller.
  const states = before.map((s) => (after.has(s) ? { portal: s.portal, controller: after.get(s)! } : s));
  return { states, preexisting, failures };
}

/** `nvme ns-rescan` for controllers that are live; failures are logged, not fatal. */
export async function rescan(ctx: AgentContext, ctrls: Iterable<string>): Promise<void> {
  await Promise.all(
    [...ctrls].map(async (c) => {
      const r = classify(
        await traced(ctx, `nvme ns-rescan ${c}`, () =>
          ctx.host.run('nvme', rescanArgs(c), { timeoutMs: ctx.commandTimeoutMs }),
        ),
      );
      if (r.kind !== 'ok')
        ctx.log.warn({ controller: c, err: 'message' in r ? r.message : r.kind }, 'nvme ns-rescan failed');
    }),
  );
}

export function connectFailed(target: TargetSpec, failures: PortalFailure[]): AgentError {
  // Every portal refused at authentication: a secret problem, not a network one.
  const auth = failures.length > 0 && failures.every((f) => f.authRejected);
  const why = failures.map((f) => `${f.portal}: ${f.message}`).join('; ') || 'no portals';
  return new AgentError(
    auth ? 'auth_rejected' : 'connect_failed',
    `${auth ? 'the target refused DH-HMAC-CHAP authentication (kernel log); ' : ''}no portal of ${target.nqn} could be connected: ${why}`,
    { details: { failures } },
  );
}
