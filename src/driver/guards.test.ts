import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DriverError } from './errors.ts';
import { attachmentNotFound, hostNotFound, requireAvailable, snapshotNotFound, volumeNotFound } from './guards.ts';

const shape = (e: DriverError) => ({ code: e.code, message: e.message, details: e.details });
const caught = (fn: () => unknown): DriverError => {
  try {
    fn();
  } catch (e) {
    return e as DriverError;
  }
  throw new Error('did not throw');
};

describe('guards: the shared 404s and 409s', () => {
  it('not found: the record, and the request field that named it', () => {
    assert.deepEqual(shape(volumeNotFound('v1')), {
      code: 'volume_not_found',
      message: 'volume v1 does not exist',
      details: undefined,
    });
    assert.deepEqual(shape(snapshotNotFound('s1', 'source.snapshot_id')), {
      code: 'snapshot_not_found',
      message: 'source.snapshot_id: snapshot s1 does not exist',
      details: { field: 'source.snapshot_id' },
    });
    assert.equal(attachmentNotFound('a1').message, 'attachment a1 does not exist');
    assert.equal(attachmentNotFound('a1', 'v1').message, 'attachment a1 of volume v1 does not exist');
    assert.deepEqual(shape(hostNotFound('nqn.h')), {
      code: 'host_not_found',
      message: 'host nqn.h is not known',
      details: undefined,
    });
  });

  it('not ready: anything but available and on the backend, with its status', () => {
    const v = { id: 'v1', status: 'creating', backendUuid: null };
    assert.deepEqual(shape(caught(() => requireAvailable('volume', v))), {
      code: 'volume_not_ready',
      message: 'volume v1 is creating, not available',
      details: { status: 'creating' },
    });
    assert.deepEqual(
      shape(caught(() => requireAvailable('snapshot', { ...v, status: 'error' }, 'source.snapshot_id'))),
      {
        code: 'snapshot_not_ready',
        message: 'source.snapshot_id: snapshot v1 is error, not available',
        details: { field: 'source.snapshot_id', status: 'error' },
      },
    );
    assert.equal(requireAvailable('volume', { ...v, status: 'available', backendUuid: 'b' }).backendUuid, 'b');
  });
});
