/**
 * The agent scenarios' shared stack: `portalis sim` (nvmet plane) and `portalis serve` (its
 * PostgreSQL on the host) from `stack.ts`, the host's connector from `portalis agent
 * connector-properties`, a host token from `POST /v1/hosts`, and the real agent daemon
 * `portalis agent` as a child process with short intervals. Helpers read real state only: the
 * service's REST API (the attachment's `agent` report), sysfs, configfs and the processes.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { check, checkEqual, list, observe, readSys, sh, step, waitFor } from './lib.ts';
import { controllers, nvmeDisks } from './nvme.ts';
import type { AttachmentView, Connector, NvmeofConnectionData, ServiceApi } from './rest.ts';
import { PortalisProcess, repoRoot, startStack, type Stack, type StackOptions } from './stack.ts';

export const NVMET = '/sys/kernel/config/nvmet';

/**
 * The agent's settings for the scenarios: a re-check pass (self-healing, health refresh) every
 * 2 s instead of 30, reconnect after 1 s instead of 10, reports refreshed every 5 s.
 */
export const AGENT_ENV: Record<string, string> = {
  PORTALIS_AGENT_RECHECK_INTERVAL: '2',
  PORTALIS_AGENT_RECONNECT_DELAY: '1',
  PORTALIS_AGENT_KEEP_ALIVE_TMO: '5',
  PORTALIS_AGENT_REPORT_INTERVAL: '5',
  PORTALIS_AGENT_POLL_WAIT: '20',
  PORTALIS_AGENT_COMMAND_TIMEOUT: '30',
};

/** The connector dict `portalis agent connector-properties` prints (the fields the scenarios read). */
export interface AgentConnector extends Connector {
  nvme_hostid: string;
  dm_multipath: boolean;
  host_ips: string[];
}

export class AgentStack {
  /** Every agent started, in order (`agent`, `agent-2`, …); the last one is the current. */
  readonly agents: PortalisProcess[] = [];
  /** Volumes a part created and has not deleted yet (the clean-up deletes them). */
  readonly volumes = new Set<string>();
  /** Clean-up actions a part registered (kill a holder, open a gate), run between parts. */
  readonly cleanups: (() => void | Promise<void>)[] = [];
  /** The cluster's one subsystem NQN. */
  readonly nqn: string;

  constructor(
    readonly stack: Stack,
    readonly connector: AgentConnector,
    readonly token: string,
    nqn: string,
    readonly agentEnv: Record<string, string>,
  ) {
    this.nqn = nqn;
  }

  get api() {
    return this.stack.serviceApi;
  }

  get sim() {
    return this.stack.simApi;
  }

  get agent(): PortalisProcess {
    const a = this.agents.at(-1);
    check(a, 'an agent was started');
    return a;
  }

  /**
   * Starts `portalis agent` and waits until it has registered (the host's `registered_at`
   * changes: a restarted agent registers again). Returns the ms from spawn to registered.
   */
  async startAgent(
    opts: { env?: Record<string, string>; detached?: boolean; deadlineMs?: number } = {},
  ): Promise<number> {
    const before = (await this.api.host(this.connector.nqn)).registered_at;
    const n = this.agents.length + 1;
    const agent = new PortalisProcess(
      n === 1 ? 'agent' : `agent-${n}`,
      ['agent'],
      { PORTALIS_URL: this.api.url, PORTALIS_TOKEN: this.token, ...this.agentEnv, ...opts.env },
      { detached: opts.detached },
    );
    this.agents.push(agent);
    await waitFor(
      `${agent.name} to register with the service`,
      async () => {
        agent.checkRunning();
        const h = await this.api.host(this.connector.nqn);
        return h.registered_at && h.registered_at !== before ? h : undefined;
      },
      opts.deadlineMs ?? 120_000,
    );
    return Math.round(performance.now() - agent.startedAt);
  }

  /** Polls the attachment until `accept` returns something (the agent must stay up meanwhile). */
  waitAttachment<T>(
    id: string,
    what: string,
    accept: (a: AttachmentView) => T | undefined,
    deadlineMs = 30_000,
  ): Promise<T> {
    return waitAttachment(this.api, this.agent, id, what, accept, deadlineMs);
  }

  /** Waits until the agent reports live paths to exactly `ports` (one each) and health optimal. */
  waitLivePorts(id: string, who: string, ports: number[], deadlineMs: number): Promise<AttachmentView> {
    const want = [...ports].sort((x, y) => x - y).join(',');
    return this.waitAttachment(
      id,
      `${who} live paths exactly ${want}, optimal`,
      (x) =>
        livePorts(x.agent?.paths) === want && x.agent?.paths.length === ports.length && x.health === 'optimal'
          ? x
          : undefined,
      deadlineMs,
    );
  }

  /**
   * The live-paths scenarios' clean-up, for the next part: node `node`'s address back to
   * 127.0.0.1:`port`, and the node `added()` names (if any) removed once it holds no replica.
   */
  undoClusterChanges(node: number, port: number, added: () => number | null): void {
    this.cleanups.push(async () => {
      await this.sim.setNodeAddress(node, '127.0.0.1', port);
      const ref = added();
      if (ref === null) return;
      try {
        await waitFor(
          'the added node holds no replica and is removed',
          async () => (await this.sim.removeNode(ref)).status === 200 || undefined,
          30_000,
        );
      } catch (err) {
        console.log(`  clean-up: node ${ref} not removed: ${(err as Error).message}`);
      }
    });
  }

  /** Waits for the agent to report the attachment connected with `paths` paths, all live, health optimal. */
  waitConnected(id: string, paths: number, deadlineMs = 45_000): Promise<AttachmentView> {
    return this.waitAttachment(
      id,
      `connected, optimal, ${paths} live paths`,
      (a) =>
        a.status === 'attached' &&
        a.agent?.state === 'connected' &&
        a.agent.health === 'optimal' &&
        a.health === 'optimal' &&
        a.agent.device_path &&
        a.agent.paths.length === paths &&
        a.agent.paths.every((p) => p.state === 'live')
          ? a
          : undefined,
      deadlineMs,
    );
  }

  /** Waits until the service shows the attachment detached and its device reported gone. */
  waitDetached(id: string, deadlineMs = 45_000): Promise<AttachmentView> {
    return this.waitAttachment(
      id,
      'detached, reported disconnected',
      (a) => (a.status === 'detached' && a.agent?.state === 'disconnected' ? a : undefined),
      deadlineMs,
    );
  }

  /** The host NQNs nvmet lets into the subsystem. */
  allowedHosts(): string[] {
    return list(`${NVMET}/subsystems/${this.nqn}/allowed_hosts`);
  }

  /** Creates a volume through the service and remembers it for the clean-up. */
  async createVolume(id: string, sizeGb: number, replicas = 3): Promise<void> {
    this.volumes.add(id);
    await this.api.createVolume({ id, size_gb: sizeGb, replicas });
  }

  async deleteVolume(id: string): Promise<void> {
    await this.api.deleteVolume(id);
    this.volumes.delete(id);
  }

  /** initialize_connection with the agent's own connector. */
  async attach(volumeId: string): Promise<{ data: NvmeofConnectionData; attachmentId: string }> {
    const r = await this.api.initializeConnection(volumeId, this.connector);
    return { data: r.data, attachmentId: r.attachmentId };
  }

  /** A normal terminate_connection, then waits for the agent's teardown and the service's revoke. */
  async detach(volumeId: string, attachmentId: string): Promise<AttachmentView> {
    const r = await this.api.terminateConnection(volumeId, this.connector);
    checkEqual(
      r.pending,
      [attachmentId],
      'terminate_connection on an agent host: pending until the agent releases the device',
    );
    checkEqual(r.revoked, false, 'terminate_connection revoked nothing yet');
    return this.waitDetached(attachmentId);
  }

  /**
   * Puts the host back to nothing attached, whatever the last part left: runs its clean-up
   * actions, force-detaches every live attachment of the host, waits until no controller of
   * the subsystem and no NVMe block device is left, deletes the parts' volumes and checks the
   * host is no longer allowed on the target. A dead agent is restarted first (a part that
   * killed it and failed before restarting it).
   */
  async cleanUp(): Promise<void> {
    for (const c of this.cleanups.splice(0)) await c();
    if (!this.agent.running) {
      console.log(
        `  clean-up: ${this.agent.name} is not running (${JSON.stringify(this.agent.exit)}); starting another`,
      );
      await this.startAgent();
    }
    const live = (
      (await this.api.attachments({ host_nqn: this.connector.nqn })).attachments as AttachmentView[]
    ).filter((a) => ['attaching', 'attached', 'detaching'].includes(a.status));
    for (const a of live) {
      console.log(`  clean-up: force-detaching attachment ${a.id} (${a.status}) of volume ${a.volume_id}`);
      await this.api.http.expect([200], 'POST', `/v1/volumes/${a.volume_id}/terminate_connection`, {
        connector: this.connector,
        attachment_id: a.id,
        force: true,
      });
    }
    await waitFor(
      'no controller and no NVMe device left',
      () => (controllers(this.nqn).length === 0 && nvmeDisks().length === 0 ? true : undefined),
      45_000,
      () => ({ controllers: controllers(this.nqn), disks: nvmeDisks() }),
    );
    for (const v of [...this.volumes]) {
      await this.api.deleteVolume(v, true);
      this.volumes.delete(v);
    }
    await waitFor(
      'the host to be revoked on the target',
      () => (this.allowedHosts().includes(this.connector.nqn) ? undefined : true),
      15_000,
    );
  }

  /** Prints the tails of the programs' logs (for a failing part). */
  diagnose(): void {
    for (const a of this.agents.slice(-2)) console.log(`--- ${a.name}.log (tail)\n${a.tail(50)}`);
    console.log(
      `--- service.log (tail)\n${this.stack.service.tail(25)}\n--- sim.log (tail)\n${this.stack.sim.tail(15)}`,
    );
  }

  async stop(): Promise<void> {
    const agents = await Promise.all(
      this.agents.filter((a) => a.running).map(async (a) => [a.name, await a.stop()] as const),
    );
    observe('agents stopped', Object.fromEntries(agents));
    for (const [name, exit] of agents)
      check(exit.code === 0 && !exit.killed, `${name} exits 0 on SIGTERM (got ${JSON.stringify(exit)})`);
    observe('stack stopped', await this.stack.stop());
  }
}

/** `portalis agent connector-properties`, run as the real CLI; its JSON. */
/**
 * Polls the attachment through the service until `accept` returns something; `agent`, when
 * there is one, must stay up meanwhile. A timeout shows the attachment's last status and report.
 */
export function waitAttachment<T>(
  api: ServiceApi,
  agent: PortalisProcess | null,
  id: string,
  what: string,
  accept: (a: AttachmentView) => T | undefined,
  deadlineMs = 30_000,
): Promise<T> {
  let last: AttachmentView | undefined;
  return waitFor(
    `attachment ${id.slice(0, 8)}: ${what}`,
    async () => {
      agent?.checkRunning();
      last = await api.attachment(id);
      return accept(last);
    },
    deadlineMs,
    () => last && { status: last.status, health: last.health, agent: last.agent },
  );
}

export async function agentConnectorProperties(): Promise<AgentConnector> {
  const out = await sh(
    process.execPath,
    [path.join(repoRoot, 'bin', 'portalis.mjs'), 'agent', 'connector-properties'],
    // It starts beside `portalis sim` and `portalis serve` (tsx in an emulated guest): on a
    // loaded machine that took over 2 minutes.
    400_000,
  );
  return JSON.parse(out) as AgentConnector;
}

/**
 * The shared setup of an agent boot: the simulator and the service start while
 * connector-properties runs; then the host's token, then the agent daemon.
 */
export async function startAgentStack(
  agentEnv: Record<string, string> = {},
  stackOptions: Pick<StackOptions, 'readyDeadlineMs' | 'simEnv' | 'serviceEnv'> = {},
): Promise<AgentStack> {
  const databaseUrl = process.env.PORTALIS_KERNEL_DATABASE_URL;
  check(databaseUrl, 'the host side passed PORTALIS_KERNEL_DATABASE_URL');
  observe('kernel', readSys('/proc/sys/kernel/osrelease'));
  observe('nvme_core.multipath', readSys('/sys/module/nvme_core/parameters/multipath'));
  const propsStarted = performance.now();
  const propsPromise = agentConnectorProperties().then((c) => ({
    c,
    ms: Math.round(performance.now() - propsStarted),
  }));
  propsPromise.catch(() => undefined); // awaited below; startStack's failure must not leave it unhandled
  const stack = await startStack({ databaseUrl, ...stackOptions });
  try {
    const { c: connector, ms } = await step('portalis agent connector-properties', () => propsPromise);
    observe('connector-properties', { ms, connector });
    checkEqual(connector.nqn, readSys('/etc/nvme/hostnqn'), 'connector nqn = /etc/nvme/hostnqn');
    checkEqual(connector.nvme_hostid, readSys('/etc/nvme/hostid'), 'connector nvme_hostid = /etc/nvme/hostid');
    const state = await stack.simApi.state();
    const token = await step('POST /v1/hosts: the host token', () =>
      stack.serviceApi.issueHostToken(connector.nqn, connector.host),
    );
    check(token.startsWith('pth_'), 'a host token');
    const s = new AgentStack(stack, connector, token, state.cluster.subsystemNQN, { ...AGENT_ENV, ...agentEnv });
    const ms2 = await step('start portalis agent (the daemon) and wait for its registration', () => s.startAgent());
    observe('ready after ms (from spawn)', { ...stack.readyMs, agent: ms2 });
    const host = await s.api.host(connector.nqn);
    checkEqual(host.connector?.nqn, connector.nqn, 'the registered connector');
    observe('registered host', host);
    return s;
  } catch (err) {
    await stack.stop();
    throw err;
  }
}

/** Lines of an agent's log (pino JSON) whose `msg` is `msg`, for one attachment. */
export function agentLogLines(agent: PortalisProcess, msg: string, attachment?: string): Record<string, unknown>[] {
  let text = '';
  try {
    text = readFileSync(agent.logFile, 'utf8');
  } catch {
    return [];
  }
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const j = JSON.parse(line) as Record<string, unknown>;
      if (j.msg === msg && (attachment === undefined || j.attachment === attachment)) out.push(j);
    } catch {
      // not a log line
    }
  }
  return out;
}

/**
 * Calls `sample` every `intervalMs` in the background until `stop()`, keeping what it returns
 * with the time since start: a record of how some state evolved (health, controllers, a map).
 */
export class Sampler<T> {
  readonly samples: { at: number; value: T }[] = [];
  private stopping = false;
  private readonly loop: Promise<void>;
  private readonly t0 = performance.now();
  error: unknown = null;

  constructor(sample: () => T | Promise<T>, intervalMs = 25) {
    this.loop = (async () => {
      while (!this.stopping) {
        try {
          this.samples.push({ at: Math.round(performance.now() - this.t0), value: await sample() });
        } catch (err) {
          this.error = err;
        }
        await new Promise((r) => setTimeout(r, intervalMs));
      }
    })();
  }

  async stop(): Promise<this> {
    this.stopping = true;
    await this.loop;
    return this;
  }

  /** The samples where the value changed (JSON), for observations. */
  transitions(): { at: number; value: T }[] {
    const out: { at: number; value: T }[] = [];
    for (const s of this.samples)
      if (!out.length || JSON.stringify(out.at(-1)!.value) !== JSON.stringify(s.value)) out.push(s);
    return out;
  }
}

/** The ports of the live paths in an agent report, ascending and comma-joined (`4420,4421,4423`). */
/** The simulator node serving `portal` (`[address, port, …]`): its uuid for the fault API, and its index. */
export async function simNodeOf(
  s: AgentStack,
  portal: readonly [string, number, ...unknown[]],
): Promise<{ uuid: string; index: number }> {
  const state = await s.sim.state();
  const n = (state.nodes as { uuid: string; index: number; nvmeEndpoint: string }[]).find(
    (x) => x.nvmeEndpoint === `${portal[0]}:${portal[1]}`,
  );
  check(n, `portal ${portal[0]}:${portal[1]} is a simulator node`);
  return n;
}

export const livePorts = (paths: { port: number; state: string }[] | undefined): string =>
  (paths ?? [])
    .filter((p) => p.state === 'live')
    .map((p) => p.port)
    .sort((a, b) => a - b)
    .join(',');
