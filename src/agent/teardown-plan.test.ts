import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Controller } from './sysfs.ts';
import { type ControllerFact, type NamespaceFact, keepReasonOf, planControllers, planDevice } from './teardown-plan.ts';
import type { DeviceUsage } from './teardown.ts';

/** The teardown's decisions on snapshots written by hand: nothing runs, nothing is read. */

const idle: DeviceUsage = { openBy: [], mountedAt: [], holders: [], swap: false };
const open: DeviceUsage = { ...idle, openBy: ['4242'] };
const ctrl = (name: string, state = 'live'): Controller =>
  ({ name, nqn: 'nqn.x', state, transport: 'tcp', address: { traddr: '10.0.0.1', trsvcid: '4420' } }) as Controller;
const ns = (over: Partial<NamespaceFact> = {}): NamespaceFact => ({
  name: 'nvme0c0n2',
  top: 'nvme0n2',
  own: false,
  usableHere: true,
  usableElsewhere: null,
  usage: idle,
  ...over,
});
const fact = (namespaces: NamespaceFact[], over: Partial<ControllerFact> = {}): ControllerFact => ({
  controller: ctrl('nvme0'),
  namedBy: null,
  namespaces,
  ...over,
});

describe('teardown plan', () => {
  it('a device in use is refused, nothing planned; forced, it is flushed and gone past', () => {
    const top = [{ block: 'nvme0n1', path: '/dev/nvme0n1', usage: open }];
    assert.deepEqual(planDevice(top, null, false), { refused: top[0], forcedPast: [], steps: [] });
    assert.deepEqual(planDevice(top, null, true), {
      refused: null,
      forcedPast: top,
      steps: [{ kind: 'flush', path: '/dev/nvme0n1' }],
    });
  });

  it('DM: the map is flushed, then removed, before any path goes', () => {
    const map = { dm: 'dm-0', name: 'uuid.x' };
    const plan = planDevice([{ block: 'dm-0', path: '/dev/mapper/uuid.x', usage: idle }], map, false);
    assert.deepEqual(
      plan.steps.map((s) => s.kind),
      ['flush', 'remove-map'],
    );
  });

  it('a controller another attachment names stays, whatever is behind it', () => {
    const named = fact([], {
      namedBy: { nqn: 'nqn.x', portal: { address: '10.0.0.1', port: 4420, transport: 'tcp' }, volUuid: 'v2' },
    });
    assert.match(
      keepReasonOf(named, true) ?? '',
      /another attachment on this host \(volume v2\).*tcp:\/\/10\.0\.0\.1:4420/,
    );
  });

  it('knowing every attachment, only an in-use other namespace keeps it; not knowing, any visible one does', () => {
    assert.equal(keepReasonOf(fact([ns({ own: true, usage: open })]), true), null, 'the own volume never keeps it');
    assert.equal(keepReasonOf(fact([ns()]), true), null, 'visible and idle: it goes');
    assert.match(keepReasonOf(fact([ns({ usage: open })]), true) ?? '', /\/dev\/nvme0n2 is open by pid 4242/);
    assert.match(keepReasonOf(fact([ns({ usage: null })]), false) ?? '', /visible; this caller does not know/);
  });

  it('stale: an in-use volume unusable here but usable elsewhere does not keep a dead controller', () => {
    const dead = ns({ usableHere: false, usableElsewhere: true, usage: null });
    assert.equal(keepReasonOf(fact([dead], { controller: ctrl('nvme0', 'connecting') }), true, true), null);
    const only = ns({ usableHere: false, usableElsewhere: false, usage: open });
    assert.match(keepReasonOf(fact([only]), true, true) ?? '', /in use|open by/);
  });

  it('controllers: each goes unless kept, in order', () => {
    const plan = planControllers(
      [
        fact([], { controller: ctrl('nvme0') }),
        fact([ns({ usage: open })], { controller: ctrl('nvme1') }),
        fact([], { controller: ctrl('nvme2') }),
      ],
      true,
    );
    assert.deepEqual(
      plan.steps.map((s) => (s.kind === 'disconnect' ? s.controller.name : s.kind)),
      ['nvme0', 'nvme2'],
    );
    assert.deepEqual(
      plan.kept.map((k) => k.controller),
      ['nvme1'],
    );
  });
});
