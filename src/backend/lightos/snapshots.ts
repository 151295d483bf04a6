/**
 * Snapshots over LightOS API v2, as the LightOS Cinder driver handles them (`cinder/volume/drivers/lightos.py` `_create_snapshot`):
 *
 * - create: up to `snapshotMaxCalls` attempts (Cinder's `lightos_api_service_snapshots_max_calls`,
 *   5), `pollIntervalMs × 2^i` apart (Cinder: `2**i` seconds; our default poll interval is 1 s).
 *   Each attempt looks the name up first (found means an earlier attempt, or an earlier request,
 *   already created it), then POSTs. Answers 400, 500 and 503 are retried, as Cinder retries them:
 *   LightOS answers 400 while the source volume is still settling (FailedPrecondition) and 5xx
 *   while its API is busy. Anything else is final at once. The whole create, pauses included,
 *   stays within the operation deadline.
 * - then wait for Available; a snapshot that ends Failed is deleted and reported.
 * - delete: a missing snapshot is not an error (Cinder only warns).
 */
import { DriverError, isDriverError } from '../../driver/errors.ts';
import type { BackendSnapshot } from '../../driver/ports.ts';
import type { LightosCalls } from './calls.ts';
import { lightosError, type Op } from './errors.ts';
import { parseSnapshot } from './parse.ts';

const TRANSIENT = new Set(['Creating', 'Updating', 'Unknown']);
const GONE = new Set(['Deleting', 'Deleted']);
/** The statuses the Cinder driver's `_create_snapshot` retries on. */
const RETRIED_STATUSES = new Set([400, 500, 503]);

/** Whether one failed create attempt may simply be repeated. */
function retryable(e: unknown): e is DriverError {
  if (!isDriverError(e)) return false;
  // No endpoint answered: with several endpoints the transport gives up after one round.
  if (e.code === 'backend_unavailable') return true;
  const status = e.details?.status;
  return typeof status === 'number' && RETRIED_STATUSES.has(status);
}

export class LightosSnapshots {
  constructor(private readonly calls: LightosCalls) {}

  private path(uuid: string): string {
    return `${this.calls.snapshotsPath()}/${encodeURIComponent(uuid)}`;
  }

  async create(sourceVolumeUuid: string, name: string): Promise<BackendSnapshot> {
    const op = this.calls.begin('createSnapshot', `snapshot ${name}`);
    const { uuid } = await this.findOrPostWithRetries(op, sourceVolumeUuid, name);
    const final = await this.calls.waitFor(op, `snapshot ${uuid} to become Available`, async () => {
      const s = await this.calls.readSnapshot(op, uuid);
      if (!s)
        throw lightosError(op, {
          kind: 'vanished',
          what: `snapshot ${uuid}`,
          during: 'waiting for it to become Available',
        });
      return TRANSIENT.has(s.state) ? { done: false, state: s.state } : { done: true, value: s };
    });
    if (final.state === 'Available') return final;
    let cleanedUp = false;
    if (final.state === 'Failed') {
      cleanedUp = await this.delete(uuid).then(
        () => true,
        (err) => (
          this.calls.cfg.logger.warn({ err, snapshot: uuid }, 'could not delete failed LightOS snapshot'), false
        ),
      );
    }
    throw lightosError(op, { kind: 'endState', what: `snapshot ${uuid}`, state: final.state, cleanedUp });
  }

  private async findOrPostWithRetries(op: Op, sourceVolumeUuid: string, name: string): Promise<BackendSnapshot> {
    const { clock, pollIntervalMs, snapshotMaxCalls, logger } = this.calls.cfg;
    let last: DriverError | undefined;
    let attempts = 0;
    for (let i = 0; i < snapshotMaxCalls; i++) {
      if (i > 0) {
        const pause = pollIntervalMs * 2 ** (i - 1);
        if (clock.now() + pause > op.deadline) break; // the next attempt would start past the deadline
        await clock.sleep(pause);
      }
      attempts++;
      try {
        return await this.findOrPost(op, sourceVolumeUuid, name);
      } catch (e) {
        if (!retryable(e)) throw e;
        last = e;
        logger.warn(
          { operation: op.name, snapshot: name, attempt: attempts, err: e.message },
          'LightOS snapshot create attempt failed; retrying',
        );
      }
    }
    const cause = last!;
    throw new DriverError(
      cause.code,
      `${cause.message} (gave up after ${attempts} attempt${attempts === 1 ? '' : 's'})`,
      {
        details: { ...cause.details, attempts },
        cause,
      },
    );
  }

  /** One attempt: the snapshot by name (an earlier attempt may have made it), else POST. */
  private async findOrPost(op: Op, sourceVolumeUuid: string, name: string): Promise<BackendSnapshot> {
    let found = await this.calls.readSnapshotByName(op, name);
    if (found && GONE.has(found.state)) {
      // A previous delete of the same name is still running: let it finish, then create anew.
      const uuid = found.uuid;
      await this.calls.waitFor(op, `snapshot ${uuid} to be deleted`, async () => {
        const s = await this.calls.readSnapshot(op, uuid);
        return !s || s.state === 'Deleted' ? { done: true, value: undefined } : { done: false, state: s.state };
      });
      found = null;
    }
    if (found) return found;
    const a = await this.calls.send(op, {
      method: 'POST',
      path: this.calls.snapshotsPath(),
      body: { name, sourceVolumeUUID: sourceVolumeUuid },
    });
    if (this.calls.isOk(a)) return this.calls.parse(op, a, parseSnapshot);
    if (a.status === 409) {
      // Lost a race with another create of the same name: that snapshot is ours too.
      const raced = await this.calls.readSnapshotByName(op, name);
      if (raced) return raced;
    }
    this.calls.fail(op, a, 'volume_not_found');
  }

  async getByName(name: string): Promise<BackendSnapshot | null> {
    const op = this.calls.begin('getSnapshotByName', `snapshot ${name}`);
    return this.calls.readSnapshotByName(op, name);
  }

  async delete(uuid: string): Promise<void> {
    const op = this.calls.begin('deleteSnapshot', `snapshot ${uuid}`);
    await this.calls.deleteAndWait(op, this.path(uuid), `snapshot ${uuid}`, () => this.calls.readSnapshot(op, uuid));
  }
}
