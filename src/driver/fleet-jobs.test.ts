import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../shared/clock.ts';
import { silentLogger } from '../shared/logger.ts';
import { type JobOutcome, runFleetJob } from './fleet-jobs.ts';
import type { JobClaim, PeriodicJobs } from './ports.ts';

/** `PeriodicJobs` in memory on the manual clock (the database's now()); `down` makes every call throw. */
class MemoryJobs implements PeriodicJobs {
  rows = new Map<string, { token: number; dueAt: number; result?: unknown }>();
  down = false;
  calls: string[] = [];
  constructor(private readonly clock: ManualClock) {}
  private check(what: string) {
    this.calls.push(what);
    if (this.down) throw new Error('database unreachable');
  }
  async claim(job: string, leaseMs: number): Promise<JobClaim | { dueInMs: number }> {
    this.check('claim');
    const now = this.clock.now();
    const row = this.rows.get(job);
    if (row && row.dueAt > now) return { dueInMs: row.dueAt - now };
    const token = (row?.token ?? 0) + 1;
    this.rows.set(job, { ...row, token, dueAt: now + leaseMs });
    return { token: String(token) };
  }
  async renew(job: string, claim: JobClaim, leaseMs: number): Promise<boolean> {
    this.check('renew');
    const row = this.rows.get(job);
    if (String(row?.token) !== claim.token) return false;
    row!.dueAt = this.clock.now() + leaseMs;
    return true;
  }
  async finish(job: string, claim: JobClaim, periodMs: number, result?: unknown): Promise<boolean> {
    this.check('finish');
    const row = this.rows.get(job);
    if (String(row?.token) !== claim.token) return false;
    row!.dueAt = this.clock.now() + periodMs;
    if (result !== undefined) row!.result = result;
    return true;
  }
  async lastResult(): Promise<null> {
    return null;
  }
}

const recorder = () => {
  const seen: [JobOutcome, number | undefined][] = [];
  return { seen, observer: { attempt: (_job: string, o: JobOutcome, s?: number) => void seen.push([o, s]) } };
};

describe('runFleetJob: one replica per period, through claims', () => {
  it('a pass that throws counts as failed, still ends its claim, and the next pass comes a period later', async () => {
    const clock = new ManualClock();
    const jobs = new MemoryJobs(clock);
    const { seen, observer } = recorder();
    let calls = 0;
    const pass = async () => {
      calls++;
      await clock.sleep(200);
      if (calls === 1) throw new Error('backend unreachable');
    };
    const r = runFleetJob(
      jobs,
      { name: 'j', periodMs: 1000, leaseMs: 900, pass },
      { logger: silentLogger, clock, observer },
    );
    await clock.runUntil(() => calls === 2, 50, 5000);
    assert.deepEqual(seen[0], ['failed', 0.2]);
    assert.equal(clock.now(), 2200, 'first pass at 1000, ended 1200, next at 2200');
    assert.deepEqual(jobs.calls, ['claim', 'finish', 'claim']);
    await clock.runUntil(() => seen.length === 2, 50, 1000);
    assert.deepEqual(seen[1], ['ran', 0.2]);
    await r.stop();
  });

  it('renews the lease during a long pass; a lost claim ends nothing of the new owner', async () => {
    const clock = new ManualClock();
    const jobs = new MemoryJobs(clock);
    let release = () => {};
    const released = new Promise<void>((r) => (release = r));
    const r = runFleetJob(
      jobs,
      { name: 'j', periodMs: 1000, leaseMs: 300, atStart: true, pass: () => released },
      { logger: silentLogger, clock },
    );
    await clock.advance(0);
    await clock.runUntil(() => jobs.calls.filter((c) => c === 'renew').length === 3, 10, 2000);
    assert.equal(jobs.rows.get('j')!.dueAt, clock.now() + 300, 'the lease moves with each renewal');
    // Another replica takes the job over (as if this one had been cut off past its lease).
    jobs.rows.get('j')!.token = 7;
    await clock.advance(100);
    release();
    await clock.advance(0);
    const row = jobs.rows.get('j')!;
    assert.equal(row.token, 7);
    assert.ok(row.dueAt < clock.now() + 1000, "the lost claim's end did not touch the new owner's row");
    await r.stop();
  });

  it('a replica that finds the job not due skips it and sleeps until it is due; a claim error counts failed', async () => {
    const clock = new ManualClock();
    const jobs = new MemoryJobs(clock);
    jobs.rows.set('j', { token: 1, dueAt: 1500 });
    const { seen, observer } = recorder();
    let passes = 0;
    const r = runFleetJob(
      jobs,
      { name: 'j', periodMs: 5000, atStart: true, pass: async () => void passes++ },
      { logger: silentLogger, clock, observer },
    );
    await clock.advance(0);
    assert.deepEqual(seen, [['skipped', undefined]]);
    await clock.advance(1504);
    assert.equal(passes, 0, 'not before it is due (plus the margin)');
    await clock.advance(1);
    assert.equal(passes, 1);
    jobs.down = true;
    await clock.runUntil(() => seen.length === 3, 100, 6000);
    assert.deepEqual(seen.at(-1), ['failed', undefined]);
    await r.stop();
    assert.equal(clock.pending, 0);
  });
});
