/**
 * One guest boot: QEMU (TCG; KVM does not run a stock guest on these machines) with the host's
 * root, the kernel's modules and a per-run folder shared over 9p; the initramfs
 * (scripts/kernel/init.sh) runs scripts/kernel/stage2.sh, which runs the command and powers off.
 * A hard timeout kills QEMU, so a hung guest never blocks the caller.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { killGroup } from './exec.ts';
import type { KernelArtifacts } from './prepare.ts';

export interface BootSpec {
  kernel: KernelArtifacts;
  /** Host folder shared read-write with the guest at the same path; results land here. */
  runDir: string;
  repoRoot: string;
  /** Shell command run by stage 2 in the guest, in `cwd`. */
  command: string;
  cwd: string;
  env: Record<string, string>;
  /** Adds a virtio NIC on QEMU user networking: the guest reaches the host at 10.0.2.2. */
  network: boolean;
  /** Extra kernel parameters, e.g. `nvme_core.multipath=N`. */
  cmdline: string[];
  /** Modules stage 2 loads before the command. */
  modules: string[];
  timeoutMs: number;
  memoryMb?: number;
  cpus?: number;
  /** Each chunk of the serial console as it arrives. */
  onConsole?: (chunk: string) => void;
}

export type BootStatus = 'exited' | 'timeout' | 'no-result' | 'qemu-failed';

export interface BootResult {
  status: BootStatus;
  /** The command's exit status; null unless `status` is `exited`. */
  exitCode: number | null;
  output: string;
  console: string;
  /** Host wall time from QEMU start to QEMU exit. */
  totalMs: number;
  /** Guest uptime when stage 2 began (kernel + initramfs + mounts). */
  bootMs: number | null;
  /** The command's own duration, measured in the guest. */
  scenarioMs: number | null;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function qemuArgs(spec: BootSpec): string[] {
  const append = ['console=ttyS0', 'quiet', 'panic=-1', `portalis.run=${spec.runDir}`, ...spec.cmdline];
  const args = [
    '-accel',
    'tcg,thread=multi',
    '-cpu',
    'max',
    '-smp',
    String(spec.cpus ?? 2),
    '-m',
    String(spec.memoryMb ?? 2048),
    '-nodefaults',
    '-display',
    'none',
    '-serial',
    'stdio',
    '-no-reboot',
    '-kernel',
    spec.kernel.kernelImage,
    '-initrd',
    spec.kernel.initrd,
    '-append',
    append.join(' '),
    '-virtfs',
    'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-virtfs',
    `local,path=${spec.kernel.modulesDir},mount_tag=modules,security_model=none,readonly=on`,
    '-virtfs',
    `local,path=${spec.runDir},mount_tag=results,security_model=none`,
  ];
  if (spec.network) {
    // romfile= : no iPXE option ROM (nothing boots from the network; saves a file and time).
    args.push('-netdev', 'user,id=n0', '-device', 'virtio-net-pci,netdev=n0,romfile=');
  }
  return args;
}

async function readIfExists(file: string): Promise<string | null> {
  return existsSync(file) ? readFile(file, 'utf8') : null;
}

export async function boot(spec: BootSpec): Promise<BootResult> {
  const env: Record<string, string> = {
    ...spec.env,
    PORTALIS_RUN_DIR: spec.runDir,
    PORTALIS_STAGE2: path.join(spec.repoRoot, 'scripts', 'kernel', 'stage2.sh'),
    PORTALIS_COMMAND: spec.command,
    PORTALIS_CWD: spec.cwd,
    PORTALIS_NETWORK: spec.network ? '1' : '0',
    PORTALIS_MODULES: spec.modules.join(' '),
  };
  await writeFile(
    path.join(spec.runDir, 'run.env'),
    Object.entries(env)
      .map(([k, v]) => `export ${k}=${shellQuote(v)}\n`)
      .join(''),
  );

  const started = performance.now();
  let consoleText = '';
  let timedOut = false;
  const qemu = spawn('qemu-system-x86_64', qemuArgs(spec), {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const onData = (d: Buffer) => {
    const s = d.toString();
    consoleText += s;
    spec.onConsole?.(s);
  };
  qemu.stdout.on('data', onData);
  qemu.stderr.on('data', onData);
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(qemu.pid);
  }, spec.timeoutMs);
  const qemuCode = await new Promise<number>((resolve) => {
    qemu.on('error', (err) => {
      consoleText += `\n${err}`;
      resolve(127);
    });
    qemu.on('close', (code) => resolve(code ?? 128));
  });
  clearTimeout(timer);
  const totalMs = performance.now() - started;

  const exitText = await readIfExists(path.join(spec.runDir, 'exit-code'));
  const output = (await readIfExists(path.join(spec.runDir, 'output.log'))) ?? '';
  const timing = (await readIfExists(path.join(spec.runDir, 'timing'))) ?? '';
  const uptime = /stage2_uptime_s=([\d.]+)/.exec(timing)?.[1];
  const scenarioMs = /scenario_ms=(\d+)/.exec(timing)?.[1];
  await writeFile(path.join(spec.runDir, 'console.log'), consoleText);

  let status: BootStatus;
  if (timedOut) status = 'timeout';
  else if (exitText !== null && exitText.trim() !== '') status = 'exited';
  else status = qemuCode === 0 ? 'no-result' : 'qemu-failed';
  return {
    status,
    exitCode: status === 'exited' ? Number(exitText!.trim()) : null,
    output,
    console: consoleText,
    totalMs,
    bootMs: uptime ? Number(uptime) * 1000 : null,
    scenarioMs: scenarioMs ? Number(scenarioMs) : null,
  };
}
