/**
 * Block I/O for guest scenarios, the way a host tool does it: `dd` with O_DIRECT (dd aligns its
 * buffers; node cannot promise the alignment O_DIRECT needs), 1 MiB chunks, and a pattern in
 * which every 4 KiB block names its tag, generation, chunk and block, so that a block written to
 * the wrong place, lost, or read back stale shows which one it is.
 *
 * - `writeChunks` / `verifyChunks`: write a region and check it.
 * - `BackgroundWriter`: rewrites a region chunk by chunk, generation after generation, until
 *   stopped, recording every failed write (exit code and dd's message) and the last generation
 *   that landed on each chunk; `verify()` then reads the region back and compares.
 */
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { waitFor } from './lib.ts';
import { MiB } from '../../../src/shared/units.ts';

const BLOCK = 4096;
/** One random 4 KiB block per process, under every header: cheap to make and to compare. */
const BASE = randomBytes(BLOCK);

export interface DdResult {
  code: number;
  stdout: Buffer;
  stderr: string;
  ms: number;
}

/** Runs dd with binary stdin/stdout; never rejects (the caller reads `code` and `stderr`). */
export function dd(args: string[], input?: Buffer, timeoutMs = 60_000): Promise<DdResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn('dd', [...args, 'status=none'], { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout: Buffer.alloc(0), stderr: String(err), ms: performance.now() - t0 });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? 128,
        stdout: Buffer.concat(out),
        stderr: stderr.trim() + (signal ? ` (killed by ${signal}${signal === 'SIGKILL' ? ', timeout' : ''})` : ''),
        ms: performance.now() - t0,
      });
    });
    if (input) {
      child.stdin!.on('error', () => undefined); // dd died early: its exit code says why
      child.stdin!.end(input);
    }
  });
}

/** The content of chunk `chunk` (1 MiB) in generation `gen` of pattern `tag`. */
export function chunkPattern(tag: string, gen: number, chunk: number): Buffer {
  const buf = Buffer.allocUnsafe(MiB);
  for (let b = 0; b < MiB / BLOCK; b++) {
    BASE.copy(buf, b * BLOCK);
    buf.write(`portalis:${tag}:g${gen}:c${chunk}:b${b};`, b * BLOCK);
  }
  return buf;
}

function header(buf: Buffer, offset: number): string {
  const text = buf.subarray(offset, offset + 64).toString('latin1');
  const end = text.indexOf(';');
  return end > 0 && text.startsWith('portalis:')
    ? text.slice(0, end)
    : `(no header: ${JSON.stringify(text.slice(0, 16))}…)`;
}

/** What differs between two chunks, block by block (first few), or null when equal. */
function describeMismatch(want: Buffer, got: Buffer): string | null {
  if (want.equals(got)) return null;
  if (got.length !== want.length) return `read ${got.length} bytes, expected ${want.length}`;
  const bad: string[] = [];
  for (let off = 0; off < want.length && bad.length < 3; off += BLOCK) {
    if (!want.subarray(off, off + BLOCK).equals(got.subarray(off, off + BLOCK))) {
      bad.push(`block ${off / BLOCK}: expected ${header(want, off)}, found ${header(got, off)}`);
    }
  }
  return bad.join('; ');
}

/** Writes chunk `chunk` at `offsetMiB + chunk` MiB of `dev` with O_DIRECT. */
export function writeChunk(dev: string, offsetMiB: number, tag: string, gen: number, chunk: number): Promise<DdResult> {
  return dd(
    [`of=${dev}`, 'bs=1M', 'count=1', `seek=${offsetMiB + chunk}`, 'oflag=direct', 'iflag=fullblock', 'conv=notrunc'],
    chunkPattern(tag, gen, chunk),
  );
}

/** Reads `count` chunks from `offsetMiB` MiB of `dev` with O_DIRECT. */
export async function readChunks(dev: string, offsetMiB: number, count: number): Promise<Buffer> {
  const r = await dd([`if=${dev}`, 'bs=1M', `count=${count}`, `skip=${offsetMiB}`, 'iflag=direct']);
  if (r.code !== 0)
    throw new Error(`dd read of ${count} MiB at ${offsetMiB} MiB of ${dev} failed (exit ${r.code}): ${r.stderr}`);
  return r.stdout;
}

/**
 * Writes chunks 0..count-1 (generation `gen`) with O_DIRECT, one dd for the whole region;
 * throws on any failure. Returns the write time.
 */
export async function writeChunks(
  dev: string,
  offsetMiB: number,
  count: number,
  tag: string,
  gen = 1,
): Promise<number> {
  const data = Buffer.concat(Array.from({ length: count }, (_, c) => chunkPattern(tag, gen, c)));
  const r = await dd(
    [`of=${dev}`, 'bs=1M', `count=${count}`, `seek=${offsetMiB}`, 'oflag=direct', 'iflag=fullblock', 'conv=notrunc'],
    data,
  );
  if (r.code !== 0)
    throw new Error(`dd write of ${count} MiB at ${offsetMiB} MiB of ${dev} failed (exit ${r.code}): ${r.stderr}`);
  return Math.round(r.ms);
}

/**
 * Reads the region back with O_DIRECT and compares chunk c with generation `gens[c]` of the
 * pattern (0: not checked). Returns the problems found (empty: all good) and the read time.
 */
export async function verifyChunks(
  dev: string,
  offsetMiB: number,
  tag: string,
  gens: readonly number[],
): Promise<{ problems: string[]; readMs: number }> {
  const t0 = performance.now();
  const data = await readChunks(dev, offsetMiB, gens.length);
  const readMs = Math.round(performance.now() - t0);
  const problems: string[] = [];
  gens.forEach((gen, c) => {
    if (gen <= 0) return;
    const why = describeMismatch(chunkPattern(tag, gen, c), data.subarray(c * MiB, (c + 1) * MiB));
    if (why) problems.push(`chunk ${c} (generation ${gen}): ${why}`);
  });
  return { problems, readMs };
}

export interface WriteFailure {
  chunk: number;
  gen: number;
  code: number;
  stderr: string;
  /** ms since the writer started. */
  at: number;
}

/**
 * Rewrites `chunks` MiB of `dev` from `offsetMiB`, one O_DIRECT dd per 1 MiB chunk, in
 * generations (1, 2, …) until `stop()`. A failed write is recorded and that chunk is then not
 * verified (its content is unknown); the scenario decides whether any failure is acceptable.
 */
export class BackgroundWriter {
  readonly failures: WriteFailure[] = [];
  /** Successful chunk writes so far. */
  written = 0;
  /** The slowest successful chunk write, ms (how long I/O stalled during a path change). */
  maxWriteMs = 0;
  private readonly gens: number[];
  private stopping = false;
  private loop: Promise<void> | undefined;
  private started = 0;

  constructor(
    readonly dev: string,
    readonly offsetMiB: number,
    readonly chunks: number,
    readonly tag: string,
  ) {
    this.gens = new Array<number>(chunks).fill(0);
  }

  start(): this {
    this.started = performance.now();
    this.loop = this.run();
    return this;
  }

  private async run(): Promise<void> {
    for (let gen = 1; !this.stopping; gen++) {
      for (let c = 0; c < this.chunks && !this.stopping; c++) {
        const r = await writeChunk(this.dev, this.offsetMiB, this.tag, gen, c);
        if (r.code === 0) {
          this.gens[c] = gen;
          this.written++;
          this.maxWriteMs = Math.max(this.maxWriteMs, Math.round(r.ms));
        } else {
          this.gens[c] = -1;
          this.failures.push({
            chunk: c,
            gen,
            code: r.code,
            stderr: r.stderr,
            at: Math.round(performance.now() - this.started),
          });
        }
      }
    }
  }

  /** Waits until `count` more chunks were written (or a write failed), within `deadlineMs`. */
  async waitForWrites(count: number, what: string, deadlineMs = 30_000): Promise<void> {
    const target = this.written + count;
    await waitFor(
      `${count} more chunk writes (${what})`,
      () => (this.written >= target || this.failures.length > 0 ? true : undefined),
      deadlineMs,
      () => ({ written: this.written, target }),
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
  }

  /** Generations written per chunk: 0 never, -1 the last write failed. */
  generations(): readonly number[] {
    return [...this.gens];
  }

  /** Reads the region back; every chunk must hold the last generation that landed on it. */
  verify(): Promise<{ problems: string[]; readMs: number }> {
    return verifyChunks(this.dev, this.offsetMiB, this.tag, this.gens);
  }
}
