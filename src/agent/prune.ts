/**
 * The prune after a portal change: the controllers of portals that no longer serve the volume go
 * once it has a usable path through its current ones (the Attacher takes the subsystem's lock
 * around it). The keep rules are teardown-plan.ts's. With `refused`, also the named controllers
 * that the target refuses on a retired secret (dropRefused), so that a new connect replaces them.
 */
import type { AttachSpec, PortalSpec } from './connection-data.ts';
import type { AgentContext } from './context.ts';
import { anaCarriesIo } from './health.ts';
import { identify } from './identity.ts';
import { strategyFor } from './multipath/strategy.ts';
import { portalKey, servesPortal } from './portals.ts';
import { listControllers, namespacesUnderController, readBlockNamespace } from './sysfs.ts';
import { disconnectController } from './teardown.ts';
import { keepReasonOf } from './teardown-plan.ts';
import { factOf, otherUsers, usableElsewhereOf } from './teardown-snapshot.ts';

export interface PruneResult {
  disconnected: string[];
  kept: { controller: string; reason: string }[];
  /** Nothing could be pruned yet: no usable path through the current portals. */
  pending: boolean;
}

export async function prunePortals(
  ctx: AgentContext,
  spec: AttachSpec,
  hostNqn: string | null,
  stale: PortalSpec[],
  otherAttachments: AttachSpec[],
  opts: { deadOnly?: boolean; refused?: Set<string> } = {},
): Promise<PruneResult> {
  const out: PruneResult = { disconnected: [], kept: [], pending: false };
  // Before the check below: each refused controller has its own (whether its namespaces are usable elsewhere).
  if (opts.refused) await dropRefused(ctx, spec, opts.refused, out);
  const now = await strategyFor(spec).locate(ctx, spec, hostNqn);
  // DM mode: multipathd's view of a path does not matter here, a live controller is a path.
  const usable = now.paths.filter((p) => p.state === 'live' && (spec.mode === 'dm' || anaCarriesIo(p.anaState)));
  if (!now.devicePath || usable.length === 0) {
    out.pending = true;
    return out;
  }
  const current = spec.targets.flatMap((t) => t.portals);
  const gone = stale.filter((p) => !current.some((c) => portalKey(c) === portalKey(p)));
  const others = otherUsers(otherAttachments);
  for (const t of spec.targets) {
    const ctrls = await listControllers(ctx.host, t.nqn);
    for (const c of ctrls) {
      if (!gone.some((p) => servesPortal(c, p, hostNqn))) continue;
      // A controller that also matches a current portal is a current path, whatever it was.
      if (current.some((p) => servesPortal(c, p, hostNqn))) continue;
      if (opts.deadOnly && c.state === 'live') continue;
      const reason = keepReasonOf(await factOf(ctx.host, c, t, others, hostNqn, true, ctrls), true, true);
      const behind = spec.mode === 'dm' ? await namespacesUnderController(ctx.host, c.name) : [];
      if (reason) {
        out.kept.push({ controller: c.name, reason });
        // The controller stays for another volume, but this volume's path device behind it
        // leaves this volume's map: the backend no longer serves the volume there (its ANA
        // group is inaccessible), and multipathd would keep it in the map as a path that
        // never carries I/O.
        const own: string[] = [];
        for (const ns of behind) {
          const bn = await readBlockNamespace(ctx.host, ns);
          if (bn && identify(bn, { uuid: t.uuid }) === 'uuid') own.push(ns);
        }
        await delPaths(ctx, own);
        continue;
      }
      // Every path device behind it leaves its map first, this volume's and any other's
      // that keepReasonOf let go (a dead path of a volume with another usable one).
      await delPaths(ctx, behind);
      await disconnectController(ctx, c);
      out.disconnected.push(c.name);
    }
  }
  return out;
}

/**
 * Disconnects the named controllers that are still down, each only when every namespace behind
 * it is usable through another live controller: a controller the target refuses (its secret was
 * retired while it was down) carries no I/O now, but the last one of a device still queues it.
 * The subsystem is shared, so a controller serves other volumes too: all of them are checked.
 */
async function dropRefused(ctx: AgentContext, spec: AttachSpec, names: Set<string>, out: PruneResult) {
  for (const t of spec.targets) {
    const ctrls = await listControllers(ctx.host, t.nqn);
    for (const c of ctrls) {
      if (!names.has(c.name) || c.state === 'live' || c.state === 'deleting') continue;
      const behind = await namespacesUnderController(ctx.host, c.name);
      let elsewhere = true;
      for (const ns of behind) {
        const bn = await readBlockNamespace(ctx.host, ns);
        if (bn && !(await usableElsewhereOf(ctx.host, bn, c, ctrls))) elsewhere = false;
      }
      if (!elsewhere) {
        out.kept.push({ controller: c.name, reason: 'the only usable path of a namespace behind it' });
        continue;
      }
      if (spec.mode === 'dm') await delPaths(ctx, behind);
      await disconnectController(ctx, c);
      out.disconnected.push(c.name);
    }
  }
}

/** DM mode: `multipathd del path` for each path device, so no map keeps a path about to go. */
export async function delPaths(ctx: AgentContext, names: string[]): Promise<void> {
  for (const ns of names) {
    const r = await ctx.host.run('multipathd', ['del', 'path', ns], { timeoutMs: ctx.commandTimeoutMs });
    if (r.code !== 0) ctx.log.warn({ path: ns, err: r.stderr.trim() }, 'multipathd del path failed');
  }
}
