/**
 * The sparse files behind the nvmet namespaces (one `<volume uuid>.img` per volume in the data
 * folder). nvmet's file backend serves whatever size the file has when the namespace is enabled
 * or revalidated, so growing a volume is growing its file first.
 */
import { constants } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { errnoOf } from './configfs.ts';

/** False when files in `dir` cannot be opened with O_DIRECT (tmpfs before 6.6). */
export async function supportsODirect(dir: string): Promise<boolean> {
  const probe = path.join(dir, `.odirect-probe-${process.pid}`);
  try {
    await (await open(probe, constants.O_RDWR | constants.O_CREAT | constants.O_DIRECT, 0o600)).close();
    return true;
  } catch (err) {
    if (errnoOf(err) === 'EINVAL') return false;
    throw err;
  } finally {
    await rm(probe, { force: true });
  }
}

export const backingFile = (dataDir: string, volumeUuid: string): string => path.join(dataDir, `${volumeUuid}.img`);

/**
 * Creates the sparse file or makes it at least `sizeBytes` (never shrinks it). Returns its size
 * afterwards and whether it grew.
 */
export async function growFile(file: string, sizeBytes: number): Promise<{ sizeBytes: number; grew: boolean }> {
  const fh = await open(file, constants.O_RDWR | constants.O_CREAT, 0o600);
  try {
    const size = (await fh.stat()).size;
    if (size >= sizeBytes) return { sizeBytes: size, grew: false };
    await fh.truncate(sizeBytes);
    return { sizeBytes, grew: true };
  } finally {
    await fh.close();
  }
}

/** The file's size, 0 when it is gone (addNamespace recreates it). */
export async function fileSize(file: string): Promise<number> {
  try {
    const fh = await open(file, 'r');
    try {
      return (await fh.stat()).size;
    } finally {
      await fh.close();
    }
  } catch {
    return 0;
  }
}
