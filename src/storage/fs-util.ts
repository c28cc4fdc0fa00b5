/** Small file-system helpers shared by the storage modules. */
import type { BigIntStats, Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { DiskError } from '../errors.js';

/** lstat, or null when nothing is there (or a parent is not a folder). Other failures: DiskError. */
export async function lstatOrNull(p: string, bigint: true): Promise<BigIntStats | null>;
export async function lstatOrNull(p: string): Promise<Stats | null>;
export async function lstatOrNull(p: string, bigint?: boolean) {
  try {
    return bigint ? await lstat(p, { bigint: true }) : await lstat(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw toDiskError(e, `cannot read ${p}`);
  }
}

export function toDiskError(e: unknown, what: string): DiskError {
  if (e instanceof DiskError) return e;
  const err = e as NodeJS.ErrnoException;
  const detail =
    err.code === 'ENOSPC'
      ? 'no space left on device'
      : err.code === 'EDQUOT'
        ? 'disk quota exceeded'
        : err.code === 'EROFS'
          ? 'read-only file system'
          : err.code === 'EACCES' || err.code === 'EPERM'
            ? `permission denied${err.path ? ` (${err.path})` : ''}`
            : err.code === 'ELOOP'
              ? `refusing to follow a symlink${err.path ? ` (${err.path})` : ''}`
              : err.code === 'EISDIR'
                ? 'is a folder'
                : err.code === 'EMFILE' || err.code === 'ENFILE'
                  ? 'too many open files'
                  : (err.message ?? String(e));
  return new DiskError(`${what}: ${detail}`, { cause: e });
}

/** How many file-system calls of one kind tdl keeps in flight at once (libuv has four threads). */
export const FS_PARALLEL = 8;

/**
 * Runs `fn` on every item, at most `limit` at once (a file-system call waits on a thread of the
 * pool: one after another, thousands of them cost a round trip each). After a failure no new
 * item is started; the first failure is thrown once those running have ended.
 */
export async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== null) throw (failure as { error: unknown }).error;
}
