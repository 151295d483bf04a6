/**
 * The simulator's records. Kept apart from the wire shapes (`wire.ts`): the model stores ACLs as
 * plain lists and sizes as byte counts; only the API layer speaks LightOS (`ALLOW_NONE`, sizes
 * as strings, `ETag`).
 */
import { GiB } from '../shared/units.ts';

/** The subset of LightOS volume states the simulator produces. */
export type SimVolumeState = 'Creating' | 'Available' | 'Updating' | 'Deleting' | 'Failed';
export type SimSnapshotState = 'Creating' | 'Available' | 'Deleting' | 'Failed';

export interface SimNode {
  index: number;
  uuid: string;
  /** `node-<index>`. */
  name: string;
  address: string;
  port: number;
  up: boolean;
}

export interface SimVolume {
  uuid: string;
  name: string;
  project: string;
  sizeBytes: number;
  replicaCount: number;
  compression: boolean;
  /** Host NQNs; empty means "nobody" (`["ALLOW_NONE"]` on the wire). */
  acl: string[];
  /** IP addresses/CIDRs or the single sentinel `ALLOW_ANY`; empty means `ALLOW_NONE`. */
  ipAcl: string[];
  state: SimVolumeState;
  etag: string;
  nsid: number;
  /** Node UUIDs holding a replica, in placement order. */
  replicas: string[];
  /** The replica node currently serving the optimized path. */
  primary: string;
  /** Whether addNamespace was queued for it (it left Creating successfully, or is about to). */
  exposed: boolean;
  /** Set by the `failCreate` fault: the volume ends in Failed instead of Available. */
  failOnCreate: boolean;
  sourceSnapshotUuid: string;
  sourceSnapshotName: string;
  qosPolicyUuid: string;
  createdAt: Date;
}

export interface SimSnapshot {
  uuid: string;
  name: string;
  project: string;
  sourceVolumeUuid: string;
  sourceVolumeName: string;
  sizeBytes: number;
  state: SimSnapshotState;
  etag: string;
  createdAt: Date;
}

/**
 * A failure the API turns into an HTTP answer. LightOS's REST API is a gRPC gateway, so the
 * body also carries the gRPC status code, as grpc-gateway's error bodies do.
 */
export class SimError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'SimError';
    this.status = status;
  }
}

export const badRequest = (message: string): SimError => new SimError(400, message);
export const notFound = (message: string): SimError => new SimError(404, message);
export const conflict = (message: string): SimError => new SimError(409, message);
/** The object is in the wrong state (gRPC FailedPrecondition, which grpc-gateway answers as 400). */
export const precondition = (message: string): SimError => new SimError(400, message);

/** gRPC status codes grpc-gateway maps to these HTTP statuses (its DefaultHTTPError table). */
export function grpcCodeFor(status: number): number {
  switch (status) {
    case 400:
      return 3; // InvalidArgument
    case 401:
      return 16; // Unauthenticated
    case 403:
      return 7; // PermissionDenied
    case 404:
      return 5; // NotFound
    case 409:
      return 6; // AlreadyExists
    case 412:
      return 9; // FailedPrecondition
    case 413:
      return 8; // ResourceExhausted
    case 429:
      return 8;
    case 501:
      return 12; // Unimplemented
    case 503:
      return 14; // Unavailable
    case 504:
      return 4; // DeadlineExceeded
    default:
      return status >= 500 ? 13 : 2; // Internal / Unknown
  }
}

export { GiB };
export const TiB = 1024 ** 4;
