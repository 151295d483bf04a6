/**
 * Scripted nvme-cli for the fake host: answers like nvme-cli 1.x, 2.0 or 2.4+ would, and changes
 * the fake kernel the way the real command would have (docs/KERNEL.md §2).
 */
import type { RunResult } from '../port.ts';
import { portalKey } from './fabric.ts';
import type { FakeKernel } from './kernel.ts';

/** Which nvme-cli the fake answers as. */
export type FakeNvmeCliVersion = '1' | '2.0' | '2';

/** The shape in which "already connected" comes back. */
export type AlreadyForm = 'exit114' | 'exit70' | 'ealready-text' | 'stderr' | 'stdout';

export interface FakeNvmeCliOptions {
  version: FakeNvmeCliVersion;
  /** Defaults from `version`: 1 → exit114, 2.0 → ealready-text, 2 → stderr. */
  alreadyForm?: AlreadyForm;
  /** Controllers whose `disconnect -d` "fails": printed, exit 0, controller stays. */
  failDisconnect: Set<string>;
}

const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
const fail = (stderr: string, code = 1, stdout = ''): RunResult => ({ code, stdout, stderr });

/** Splits `-t tcp`, `--ctrl-loss-tmo=-1`, `--hostnqn x` into a map (last one wins). */
export function parseArgs(
  args: readonly string[],
  withValue: ReadonlySet<string>,
): { opts: Map<string, string>; rest: string[] } {
  const opts = new Map<string, string>();
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) opts.set(a.slice(2, eq), a.slice(eq + 1));
    else if (a.startsWith('-') && withValue.has(a.replace(/^-+/, ''))) opts.set(a.replace(/^-+/, ''), args[++i] ?? '');
    else if (a.startsWith('-')) opts.set(a.replace(/^-+/, ''), 'true');
    else rest.push(a);
  }
  return { opts, rest };
}

const VALUE_FLAGS = new Set([
  't',
  'a',
  's',
  'n',
  'q',
  'I',
  'w',
  'f',
  'o',
  'd',
  'transport',
  'traddr',
  'trsvcid',
  'nqn',
  'hostnqn',
  'hostid',
  'host-traddr',
  'output-format',
  'device',
]);

export function fakeNvme(
  kernel: FakeKernel,
  cli: FakeNvmeCliOptions,
  args: readonly string[],
  etcHostnqn: () => string | null,
): RunResult {
  const [sub, ...rest] = args;
  const { opts, rest: positional } = parseArgs(rest, VALUE_FLAGS);
  const v = cli.version;
  switch (sub) {
    case 'version':
      return ok(
        v === '1'
          ? 'nvme version 1.16\n'
          : v === '2.0'
            ? 'nvme version 2.0\n'
            : 'nvme version 2.3 (git 2.3)\nlibnvme version 1.3 (git 1.3)\n',
      );
    case 'connect':
      return connect();
    case 'disconnect':
      return disconnect();
    case 'ns-rescan': {
      const ctrl = kernel.ctrlByName(positional[0] ?? '');
      if (!ctrl) return fail(`${positional[0]}: No such file or directory\n`);
      kernel.scan(ctrl, true);
      return ok();
    }
    case 'list-subsys':
      return ok(JSON.stringify(listSubsys(), null, 2));
    default:
      return fail(`nvme: unknown command ${sub}\n`);
  }

  function connect(): RunResult {
    const transport = opts.get('t') ?? opts.get('transport') ?? 'tcp';
    const address = opts.get('a') ?? opts.get('traddr') ?? '';
    const port = Number(opts.get('s') ?? opts.get('trsvcid') ?? 4420);
    const nqn = opts.get('n') ?? opts.get('nqn') ?? '';
    const hostNqn =
      opts.get('q') ??
      opts.get('hostnqn') ??
      etcHostnqn() ??
      'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000000';
    const portal = kernel.fabric.portals.get(portalKey(transport, address, port));
    const target = kernel.fabric.subsystems.get(nqn);
    const refused =
      v === '1'
        ? 'Failed to write to /dev/nvme-fabrics: Connection refused\n'
        : 'could not add new controller: failed to write to nvme-fabrics device\n';
    if (!portal?.up || !target?.portals.has(portal.key)) return fail(refused);
    if (target.allowedHosts.size && !target.allowedHosts.has(hostNqn)) {
      return fail(
        v === '1'
          ? 'Failed to write to /dev/nvme-fabrics: Input/output error\n'
          : 'could not add new controller: failed to write to nvme-fabrics device\n',
      );
    }
    const keys = dhchapKeys(nqn, transport, address, port, hostNqn);
    const required = kernel.fabric.hostKeys.get(hostNqn);
    if (required !== undefined && keys.host !== required) {
      // The target refuses; nvme-cli 2.3 only says the write failed, the reason is in the kernel log.
      kernel.log.push(`nvme nvme${kernel.ctrls.size}: qid 0: ${keys.host ? 'authentication failed' : 'no key'}`);
      kernel.log.push(`nvme nvme${kernel.ctrls.size}: failed to connect queue: 0 ret=401`);
      return fail(
        'Failed to write to /dev/nvme-fabrics: Input/output error\ncould not add new controller: failed to write to nvme-fabrics device\n',
      );
    }
    if (kernel.findCtrl(nqn, portal, hostNqn, opts.get('w') ?? opts.get('host-traddr')) && !opts.has('D')) {
      switch (cli.alreadyForm ?? (v === '1' ? 'exit114' : v === '2.0' ? 'ealready-text' : 'stderr')) {
        case 'exit114':
          return fail('', 114);
        case 'exit70':
          return fail('', 70);
        case 'ealready-text':
          return fail('no controller found: Operation already in progress\n');
        case 'stdout':
          return fail('', 1, 'already connected\n');
        default:
          return fail('already connected\n');
      }
    }
    const ctrlOpts: Record<string, string> = {};
    const num = (k: string) => opts.get(k);
    const ctrlLoss = num('ctrl-loss-tmo') ?? num('l');
    ctrlOpts.ctrl_loss_tmo = ctrlLoss === undefined ? '600' : Number(ctrlLoss) < 0 ? 'off' : ctrlLoss;
    ctrlOpts.reconnect_delay = num('reconnect-delay') ?? num('c') ?? '10';
    ctrlOpts.kato = num('keep-alive-tmo') ?? num('k') ?? '5';
    const fio = num('fast_io_fail_tmo');
    ctrlOpts.fast_io_fail_tmo = fio === undefined || Number(fio) < 0 ? 'off' : fio;
    const nrq = num('nr-io-queues') ?? num('i');
    if (nrq !== undefined) ctrlOpts.queue_count = String(Number(nrq) + 1);
    // The secrets go in with the controller: addCtrl's scan renders sysfs with them, no second render.
    const hostTraddr = opts.get('w') ?? opts.get('host-traddr');
    const ctrl = kernel.addCtrl(nqn, portal, hostNqn, ctrlOpts, hostTraddr, address, keys);
    return ok(
      v === '1' ? '' : v === '2.0' ? `device: nvme${ctrl.instance}\n` : `connecting to device: nvme${ctrl.instance}\n`,
    );
  }

  /**
   * The secrets a connect uses, as nvme-cli 2.3 / libnvme 1.3 pick them: `--dhchap-secret` /
   * `--dhchap-ctrl-secret`, else `/etc/nvme/config.json`'s host entry whose `hostnqn` and `hostid`
   * (when /etc/nvme/hostid has one) match, its `dhchap_key`, and the matching port's
   * `dhchap_ctrl_key` (docs/KERNEL.md §6). nvme-cli 1.x reads no config.json.
   */
  function dhchapKeys(nqn: string, transport: string, address: string, port: number, hostNqn: string) {
    const given = { host: opts.get('dhchap-secret') ?? null, ctrl: opts.get('dhchap-ctrl-secret') ?? null };
    const text = v === '1' ? null : kernel.fs.read('/etc/nvme/config.json');
    if (given.host || text === null) return given;
    const hostId = kernel.fs.read('/etc/nvme/hostid')?.trim();
    type PortEntry = { transport?: string; traddr?: string; trsvcid?: string; dhchap_ctrl_key?: string };
    type HostEntry = {
      hostnqn?: string;
      hostid?: string;
      dhchap_key?: string;
      subsystems?: { nqn?: string; ports?: PortEntry[] }[];
    };
    const hosts = JSON.parse(text) as HostEntry[];
    const h = hosts.find((e) => e.hostnqn === hostNqn && (!hostId || e.hostid === hostId));
    if (!h?.dhchap_key) return given;
    const p = h.subsystems
      ?.find((s) => s.nqn === nqn)
      ?.ports?.find((e) => e.transport === transport && e.traddr === address && e.trsvcid === String(port));
    return { host: h.dhchap_key, ctrl: p?.dhchap_ctrl_key ?? null };
  }

  function disconnect(): RunResult {
    const dev = opts.get('d') ?? opts.get('device');
    const nqn = opts.get('n') ?? opts.get('nqn');
    if (dev && nqn) return fail('Both device name [-d] or NQN [-n] were specified\n');
    if (dev) {
      const lines: string[] = [];
      for (const name of dev.split(',')) {
        const ctrl = kernel.ctrlByName(name);
        if (!ctrl) lines.push(`Did not find device ${name}`);
        else if (cli.failDisconnect.has(`nvme${ctrl.instance}`))
          lines.push(`Failed to disconnect ${name}: Device or resource busy`);
        else kernel.disconnect(ctrl);
      }
      // nvme-cli prints the failure and still exits 0 (nvme-cli issue #237).
      return { code: 0, stdout: '', stderr: lines.map((l) => l + '\n').join('') };
    }
    if (nqn) {
      const mine = [...kernel.ctrls.values()].filter((c) => c.nqn === nqn);
      for (const c of mine) kernel.disconnect(c);
      return ok(`NQN:${nqn} disconnected ${mine.length} controller(s)\n`);
    }
    return fail('Need a device or NQN\n');
  }

  function listSubsys(): unknown {
    const subsystems = [...kernel.subsystems.values()].map((s) => ({
      Name: `nvme-subsys${s.instance}`,
      NQN: s.nqn,
      Paths: [...kernel.ctrls.values()]
        .filter((c) => c.nqn === s.nqn)
        .map((c) => ({
          Name: `nvme${c.instance}`,
          Transport: c.portal.transport,
          Address: (kernel.fs.read(`/sys/class/nvme/nvme${c.instance}/address`) ?? '').trim(),
          State: c.state,
        })),
    }));
    if (v === '1') return { Subsystems: subsystems };
    return [{ HostNQN: etcHostnqn() ?? '', HostID: '', Subsystems: subsystems }];
  }
}
