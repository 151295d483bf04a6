/** The LightOS API v2 adapter of the StorageBackend port. */
export { LightosBackend } from './backend.ts';
export type { LightosConfig } from './config.ts';
export { lightosError, type LightosFailure, type Op } from './errors.ts';
export { parseNvmeEndpoint, parseSizeBytes } from './parse.ts';
