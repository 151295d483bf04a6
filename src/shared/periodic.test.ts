import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from './clock.ts';
import { every } from './periodic.ts';

/** A pass that takes `ms` of the manual clock's time; records when each pass started and ended. */
function timedPass(clock: ManualClock, ms: number) {
  const log: { start: number; end: number | null }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const pass = async () => {
    const entry = { start: clock.now(), end: null as number | null };
    log.push(entry);
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    await clock.sleep(ms);
    inFlight--;
    entry.end = clock.now();
  };
  return { log, pass, maxInFlight: () => maxInFlight };
}

describe('every: a background job on a period measured from the end of the last pass', () => {
  it('waits a full period before the first pass, and a full period after each pass ends', async () => {
    const clock = new ManualClock();
    const p = timedPass(clock, 400);
    const job = every(1000, p.pass, { clock });
    await clock.advance(999);
    assert.equal(p.log.length, 0, 'no pass before the first period');
    await clock.advance(1);
    assert.equal(p.log.length, 1, 'the first pass at the period');
    await clock.runUntil(() => p.log.length === 3, 100, 10_000);
    assert.deepEqual(
      p.log.map((x) => x.start),
      [1000, 2400, 3800],
      'each start is one period after the previous end (the 400 ms pass delays the next)',
    );
    assert.equal(p.maxInFlight(), 1, 'passes never overlap');
    await clock.runUntil(() => p.log[2]!.end !== null, 100, 1000);
    await job.stop();
  });

  it('atStart runs the first pass at once', async () => {
    const clock = new ManualClock();
    const p = timedPass(clock, 0);
    const job = every(3600_000, p.pass, { clock, atStart: true });
    await clock.advance(0);
    assert.equal(p.log.length, 1);
    assert.equal(p.log[0]!.start, 0);
    await job.stop();
  });

  it('a pass that throws is reported and the schedule goes on', async () => {
    const clock = new ManualClock();
    const errors: unknown[] = [];
    let calls = 0;
    const job = every(
      100,
      async () => {
        calls++;
        if (calls === 1) throw new Error('backend unreachable');
      },
      { clock, onError: (e) => errors.push(e) },
    );
    await clock.runUntil(() => calls === 2, 50, 1000);
    assert.equal(calls, 2);
    assert.equal(errors.length, 1);
    assert.match((errors[0] as Error).message, /backend unreachable/);
    await job.stop();
  });

  it('stop cancels the wait, waits for the pass in flight, and no pass starts after it', async () => {
    const clock = new ManualClock();
    const p = timedPass(clock, 500);
    const job = every(100, p.pass, { clock });
    await clock.advance(100);
    assert.equal(p.log.length, 1, 'a pass is running');
    let stopped = false;
    const stopping = job.stop().then(() => {
      stopped = true;
    });
    await clock.advance(0);
    assert.equal(stopped, false, 'stop waits for the pass in flight');
    await clock.advance(500);
    await stopping;
    assert.equal(p.log[0]!.end, 600);
    await clock.advance(10_000);
    assert.equal(p.log.length, 1, 'nothing after stop');
    assert.equal(clock.pending, 0, 'no wait left behind');
  });
});
