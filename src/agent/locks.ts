/**
 * The agent serialises connect and disconnect per subsystem NQN: a disconnect racing a
 * connect on the same subsystem can remove the controller a volume that is being attached
 * right now needs (LightBits los-csi: "disconnecting a volume that just got mounted").
 * Different subsystems proceed in parallel.
 * One agent process runs per host (the daemon, or a CLI attach/detach); a cross-process lock
 * is not needed as long as the CLI is not run while the daemon manages the same volume.
 */
export { KeyedMutex } from '../shared/keyed-mutex.ts';
