import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import pino from 'pino';
import { ManualClock } from '../shared/clock.ts';
import { Reporter } from './reports.ts';
import type { AttachmentReport, ServiceClient } from './service-client.ts';

const report = (state: AttachmentReport['state'], health: AttachmentReport['health']): AttachmentReport => ({
  state,
  device_path: '/dev/nvme0n1',
  size_bytes: 2 ** 30,
  health,
  paths: [],
  error: null,
});

describe('agent reports', () => {
  it('logs each new state the service took, once, and not a health change or a refresh', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
        done();
      },
    });
    const delivered: string[] = [];
    const service = { report: async (_id: string, r: AttachmentReport) => void delivered.push(r.state) };
    const clock = new ManualClock();
    const reporter = new Reporter(service as unknown as ServiceClient, clock, pino(sink), 60_000);
    const send = async (r: AttachmentReport) => {
      reporter.submit('a-1', r);
      assert.equal(await reporter.flush(), true);
    };
    await send(report('connecting', null));
    await send(report('connected', 'optimal'));
    await send(report('connected', 'degraded'));
    await clock.advance(60_000);
    reporter.refreshStale();
    assert.equal(await reporter.flush(), true);
    await send(report('disconnected', null));
    assert.deepEqual(delivered, ['connecting', 'connected', 'connected', 'connected', 'disconnected']);
    assert.deepEqual(
      lines.filter((l) => l.msg === 'reported').map((l) => [l.attachment, l.state]),
      [
        ['a-1', 'connecting'],
        ['a-1', 'connected'],
        ['a-1', 'disconnected'],
      ],
    );
  });
});
