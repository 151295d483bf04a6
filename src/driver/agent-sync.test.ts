import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { effectiveHealth, REPORT_STALE_MS } from './agent-sync.ts';
import type { AgentReport } from './model.ts';

describe('effectiveHealth', () => {
  const at = new Date('2026-11-21T10:00:00Z');
  const report = (health: AgentReport['health'], ageMs: number): AgentReport => ({
    state: 'connected',
    devicePath: '/dev/nvme0n1',
    sizeBytes: 1,
    health,
    paths: [],
    error: null,
    reportedAt: new Date(at.getTime() - ageMs),
  });

  it('is the reported health while the report is fresh', () => {
    assert.equal(effectiveHealth(report('degraded', 1000), at), 'degraded');
    assert.equal(effectiveHealth(report('optimal', REPORT_STALE_MS), at), 'optimal');
  });
  it('is unknown once the report is older than 180 s (the agent refreshes every 60 s)', () => {
    assert.equal(REPORT_STALE_MS, 180_000);
    assert.equal(effectiveHealth(report('optimal', REPORT_STALE_MS + 1), at), 'unknown');
  });
  it('is unknown without a report or without a health in it', () => {
    assert.equal(effectiveHealth(null, at), 'unknown');
    assert.equal(effectiveHealth(report(null, 0), at), 'unknown');
  });
});
