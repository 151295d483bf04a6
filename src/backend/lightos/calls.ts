/**
 * The building blocks the adapter's port methods are made of: typed reads of volumes,
 * snapshots and nodes, state waits on the injected clock, and the read-modify-write loop with
 * `If-Match` that LightOS's optimistic concurrency calls for.
 */
import { isDriverError, type DriverError, type ErrorCode } from '../../driver/errors.ts';
import { poll } from '../../shared/poll.ts';
import type { ResolvedLightosConfig } from './config.ts';
import { lightosError, type Op } from './errors.ts';
import { MalformedAnswer, parseSnapshot, parseVolume, type WireVolume } from './parse.ts';
import { answerMessage, type HttpAnswer, type HttpRequest, LightosTransport } from './transport.ts';
import type { BackendSnapshot } from '../../driver/ports.ts';

export type Check<T> = { done: true; value: T } | { done: false; state: string };

/** What one read-modify-write attempt concluded. */
export type RmwStep<T> = { done: true; value: T } | { conflict: HttpAnswer };

const enc = encodeURIComponent;
const ok = (a: HttpAnswer) => a.status >= 200 && a.status < 300;

export class LightosCalls {
  readonly http: LightosTransport;

  constructor(readonly cfg: ResolvedLightosConfig) {
    this.http = new LightosTransport(cfg);
  }

  begin(name: string, subject?: string): Op {
    return { name, subject, deadline: this.cfg.clock.now() + this.cfg.operationTimeoutMs };
  }

  volumesPath(): string {
    return `/api/v2/projects/${enc(this.cfg.project)}/volumes`;
  }

  volumePath(uuid: string): string {
    return `${this.volumesPath()}/${enc(uuid)}`;
  }

  snapshotsPath(): string {
    return `/api/v2/projects/${enc(this.cfg.project)}/snapshots`;
  }

  send(op: Op, req: HttpRequest): Promise<HttpAnswer> {
    return this.http.request(op, req);
  }

  /** Throws the mapped error for an answer the operation cannot accept. */
  fail(op: Op, a: HttpAnswer, notFound?: ErrorCode): never {
    throw lightosError(op, {
      kind: 'http',
      status: a.status,
      endpoint: a.endpoint,
      message: answerMessage(a),
      notFound,
    });
  }

  /** Parses a 2xx answer's body; a missing or unparseable body is `backend_error`. */
  parse<T>(op: Op, a: HttpAnswer, parser: (body: unknown) => T): T {
    if (!ok(a)) this.fail(op, a);
    try {
      if (a.malformed) throw new MalformedAnswer(a.malformed);
      return parser(a.body);
    } catch (e) {
      if (!(e instanceof MalformedAnswer)) throw e;
      throw lightosError(op, { kind: 'malformed', endpoint: a.endpoint, reason: e.message, status: a.status }, e);
    }
  }

  isOk(a: HttpAnswer): boolean {
    return ok(a);
  }

  /** The volume, or null on 404. */
  async readVolume(op: Op, uuid: string): Promise<WireVolume | null> {
    const a = await this.send(op, { method: 'GET', path: this.volumePath(uuid) });
    return a.status === 404 ? null : this.parse(op, a, parseVolume);
  }

  /**
   * One page of the project's volume list: `GET .../volumes?limit=<n>[&offsetUUID=<uuid>]`, the
   * page after the volume `offsetUuid` (LightOS `ListVolumes`; durosapiv2.proto in
   * LightBitsLabs/los-csi). The answer is `{volumes: [...]}`, each volume as `GET .../volumes/{UUID}`
   * answers it; there is no next-page token: the next page starts after `last`, the last UUID
   * listed. A listed volume this adapter cannot read is left out with a warning, not the whole
   * page: whoever wanted it reads it on its own, and one odd volume fails only itself.
   */
  async readVolumePage(
    op: Op,
    limit: number,
    offsetUuid?: string,
  ): Promise<{ volumes: WireVolume[]; listed: number; last?: string }> {
    const offset = offsetUuid ? `&offsetUUID=${enc(offsetUuid)}` : '';
    const a = await this.send(op, { method: 'GET', path: `${this.volumesPath()}?limit=${limit}${offset}` });
    const list = this.parse(op, a, (body) => {
      const l = (body as { volumes?: unknown } | undefined)?.volumes;
      // A gRPC gateway may leave an empty repeated field out (protojson's default): no volumes.
      if (l === undefined || l === null) return [];
      if (!Array.isArray(l)) throw new MalformedAnswer('volume list has no volumes list');
      const uuids = l.map((v) => (v as { UUID?: unknown } | null)?.UUID);
      // A backend that ignored offsetUUID would answer the same page for ever.
      if (offsetUuid && uuids.includes(offsetUuid))
        throw new MalformedAnswer(`the page after volume ${offsetUuid} lists it again (offsetUUID ignored)`);
      if (l.length > 0 && typeof uuids.at(-1) !== 'string')
        throw new MalformedAnswer('the last volume of a full page has no UUID to go on from');
      return l as unknown[];
    });
    const volumes: WireVolume[] = [];
    for (const raw of list) {
      try {
        volumes.push(parseVolume(raw));
      } catch (e) {
        if (!(e instanceof MalformedAnswer)) throw e;
        this.cfg.logger.warn({ op: op.name, reason: e.message }, 'LightOS listed a volume it cannot read; left out');
      }
    }
    const last = (list.at(-1) as { UUID?: string } | undefined)?.UUID;
    return { volumes, listed: list.length, last };
  }

  /** By name, as the Cinder driver asks: `GET .../volumes/?name=<name>`; null on 404. */
  async readVolumeByName(op: Op, name: string): Promise<WireVolume | null> {
    const a = await this.send(op, { method: 'GET', path: `${this.volumesPath()}/?name=${enc(name)}` });
    if (a.status === 404) return null;
    return this.parse(op, a, (body) => {
      // LightOS answers the single volume; tolerate a `{volumes: [...]}` list filtered server-side too.
      const list = (body as { volumes?: unknown } | undefined)?.volumes;
      if (!Array.isArray(list)) return parseVolume(body);
      const hit = list.map(parseVolume).find((v) => v.volume.name === name);
      return hit ?? null;
    });
  }

  /** By name: `GET .../snapshots/?Name=<name>` (capital N, as the Cinder driver sends it); null on 404. */
  async readSnapshotByName(op: Op, name: string): Promise<BackendSnapshot | null> {
    const a = await this.send(op, { method: 'GET', path: `${this.snapshotsPath()}/?Name=${enc(name)}` });
    if (a.status === 404) return null;
    return this.parse(op, a, (body) => {
      const list = (body as { snapshots?: unknown } | undefined)?.snapshots;
      if (!Array.isArray(list)) return parseSnapshot(body);
      return list.map(parseSnapshot).find((s) => s.name === name) ?? null;
    });
  }

  async readSnapshot(op: Op, uuid: string): Promise<BackendSnapshot | null> {
    const a = await this.send(op, { method: 'GET', path: `${this.snapshotsPath()}/${enc(uuid)}` });
    return a.status === 404 ? null : this.parse(op, a, parseSnapshot);
  }

  /**
   * Polls `check` every pollIntervalMs until done or the operation deadline. Retryable backend
   * errors during the wait (a 5xx, an endpoint down) are ridden out; if the deadline comes
   * first, the last such error is thrown, else `backend_timeout` naming the state it was stuck in.
   */
  async waitFor<T>(op: Op, waitingFor: string, check: () => Promise<Check<T>>): Promise<T> {
    const { clock } = this.cfg;
    const start = clock.now();
    let lastState = 'unknown';
    let lastError: DriverError | undefined;
    const r = await poll<T>(
      async () => {
        try {
          const c = await check();
          if (c.done) return c;
          lastState = c.state;
          lastError = undefined;
          return { done: false, last: c.state };
        } catch (e) {
          if (!isDriverError(e) || !e.retryable) throw e;
          lastError = e;
          return { done: false, last: e };
        }
      },
      { deadlineMs: Math.max(0, op.deadline - clock.now()), intervalMs: this.cfg.pollIntervalMs, clock },
    );
    if (r.done) return r.value;
    if (lastError) throw lastError;
    throw lightosError(op, { kind: 'stuck', waitingFor, state: lastState, waitedMs: Math.round(clock.now() - start) });
  }

  /**
   * Repeats `step` (read, modify, write with If-Match) while the write reports a conflict,
   * every pollIntervalMs until the deadline, as the Cinder driver's `update_volume_acl` loop.
   */
  async readModifyWrite<T>(op: Op, step: () => Promise<RmwStep<T>>): Promise<T> {
    const { clock } = this.cfg;
    const start = clock.now();
    let last: HttpAnswer | undefined;
    const r = await poll<T>(
      async () => {
        const s = await step();
        if ('done' in s) return s;
        last = s.conflict;
        return { done: false, last: s.conflict.status };
      },
      { deadlineMs: Math.max(0, op.deadline - clock.now()), intervalMs: this.cfg.pollIntervalMs, clock },
    );
    if (r.done) return r.value;
    throw lightosError(op, {
      kind: 'conflict',
      status: last?.status ?? 412,
      waitedMs: Math.round(clock.now() - start),
    });
  }

  /**
   * Whether a write answer means "someone changed it first": 412 (If-Match failed), 409, or a
   * 400 whose message speaks of the ETag (LightOS's gRPC gateway may report a precondition
   * failure as 400; the Cinder driver retries its ACL PUT on any non-200).
   */
  isConflict(a: HttpAnswer): boolean {
    if (a.status === 412 || a.status === 409) return true;
    return a.status === 400 && /etag|if-match/i.test(answerMessage(a));
  }

  /**
   * DELETE, then wait until the object is gone (404) or reports Deleted, as the Cinder driver's
   * `_delete_lightos_volume`. A 404 to the DELETE means already gone. A 409 (busy) is retried.
   */
  async deleteAndWait(
    op: Op,
    path: string,
    what: string,
    read: () => Promise<{ state: string } | null>,
  ): Promise<void> {
    const gone = await this.readModifyWrite<boolean>(op, async () => {
      const a = await this.send(op, { method: 'DELETE', path });
      if (a.status === 404) return { done: true, value: true };
      if (ok(a)) return { done: true, value: false };
      if (a.status === 409) return { conflict: a };
      this.fail(op, a);
    });
    if (gone) return;
    await this.waitFor(op, `${what} to be deleted`, async () => {
      const cur = await read();
      return !cur || cur.state === 'Deleted' ? { done: true, value: undefined } : { done: false, state: cur.state };
    });
  }
}
