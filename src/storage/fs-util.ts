/** Small file-system helpers shared by the storage modules. */
import { execFile } from 'node:child_process';
import fs, { statfsSync, type BigIntStats, type Stats } from 'node:fs';
import { lstat, opendir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { logger } from '../log.js';
import { DiskError } from '../errors.js';

const log = logger('tdl:storage');

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

/**
 * The names of `want` present in folder `dir`, from one listing (only those are kept, however
 * big the folder). A folder that is not there, or is not a folder, holds nothing.
 */
export async function listNames(dir: string, want: ReadonlySet<string>): Promise<Set<string>> {
  const found = new Set<string>();
  let d;
  try {
    d = await opendir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return found;
    throw toDiskError(e, `cannot list ${dir}`);
  }
  try {
    for await (const ent of d) if (want.has(ent.name)) found.add(ent.name);
  } catch (e) {
    throw toDiskError(e, `cannot list ${dir}`);
  }
  return found;
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

/** A synchronous call slower than this turns inline calls off for INLINE_PAUSE_MS. */
export const INLINE_SLOW_MS = 50;
export const INLINE_PAUSE_MS = 5_000;
/** Inline calls run back to back for at most this long before the event loop gets a turn. */
export const INLINE_SLICE_MS = 10;
/** Largest write made inline: a bigger one is mostly copying, which a thread of the pool does. */
export const INLINE_MAX_WRITE = 64 * 1024;

/**
 * Small file-system calls made synchronously on the main thread while the disk answers fast.
 *
 * Each call through libuv's thread pool costs a hand-off to a thread and back (a futex wake, a
 * context switch, a promise): for an `lstat`, an `fstat` or a 30 KB `pwrite` to the page cache
 * that is several times the call itself, and a download of 3,000 small files makes about 15,000
 * of them. Inline, such a call takes microseconds. But a disk that stalls (write-back throttling,
 * a network file system) would stall the whole process with it: a call that took longer than
 * INLINE_SLOW_MS turns inline calls off for INLINE_PAUSE_MS, and callers then use the pool. A
 * caller making many calls in a row awaits `pace()` between them, which yields to the event loop
 * once INLINE_SLICE_MS were spent inline since the last turn.
 */
export class Inline {
  private offUntil = 0;
  private spent = 0;
  /** Calls made inline, and times a slow one turned them off (for tests and logs). */
  calls = 0;
  pauses = 0;

  constructor(private readonly enabled = true) {}

  /** May the next call be made inline? */
  get on(): boolean {
    return this.enabled && (this.offUntil === 0 || performance.now() >= this.offUntil);
  }

  /** Make one synchronous call, timing it. */
  run<T>(fn: () => T): T {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      const t = performance.now() - t0;
      this.calls++;
      this.spent += t;
      if (t > INLINE_SLOW_MS) {
        this.offUntil = performance.now() + INLINE_PAUSE_MS;
        this.pauses++;
        log('a file-system call took %d ms: through the thread pool for a while', Math.round(t));
      }
    }
  }

  /** Give the event loop a turn if the calls since the last one took INLINE_SLICE_MS. */
  async pace(): Promise<void> {
    if (this.spent < INLINE_SLICE_MS) return;
    this.spent = 0;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * Calls on raw file descriptors through libuv's thread pool (the callback API, without the
 * `FileHandle` of `fs/promises`: storage opens and closes descriptors inline while that is fast,
 * and only a descriptor can be opened synchronously). Each resolves with what the call returns.
 */
export const fdCall = {
  open(p: string, flags: number, mode: number): Promise<number> {
    return new Promise((resolve, reject) =>
      fs.open(p, flags, mode, (e, fd) => (e ? reject(e) : resolve(fd))),
    );
  },
  close(fd: number): Promise<void> {
    return new Promise((resolve, reject) => fs.close(fd, (e) => (e ? reject(e) : resolve())));
  },
  write(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
    return new Promise((resolve, reject) =>
      fs.write(fd, buf, off, len, pos, (e, n) => (e ? reject(e) : resolve(n))),
    );
  },
  read(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
    return new Promise((resolve, reject) =>
      fs.read(fd, buf, off, len, pos, (e, n) => (e ? reject(e) : resolve(n))),
    );
  },
  datasync(fd: number): Promise<void> {
    return new Promise((resolve, reject) => fs.fdatasync(fd, (e) => (e ? reject(e) : resolve())));
  },
  truncate(fd: number, len: number): Promise<void> {
    return new Promise((resolve, reject) =>
      fs.ftruncate(fd, len, (e) => (e ? reject(e) : resolve())),
    );
  },
  stat(fd: number): Promise<BigIntStats> {
    return new Promise((resolve, reject) =>
      fs.fstat(fd, { bigint: true }, (e, st) => (e ? reject(e) : resolve(st))),
    );
  },
};

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

/** Longest wait for one `syncfs` before the caller falls back to a sync per file. */
export const SYNCFS_TIMEOUT_MS = 5 * 60_000;

/**
 * Can `syncFileSystems` work here? Linux only, and from 5.8 on: older kernels' syncfs does not
 * report write-back errors, and a sync that cannot fail must not vouch for data.
 */
export function syncfsSupported(platform = process.platform, release = os.release()): boolean {
  if (platform !== 'linux') return false;
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return false;
  const major = Number(m[1]);
  return major > 5 || (major === 5 && Number(m[2]) >= 8);
}

/**
 * File systems (statfs `f_type`) whose syncfs flushes their data: ext2/3/4, xfs, btrfs, f2fs, and
 * tmpfs (nothing to flush). FUSE and network file systems do not all pass a syncfs on to where
 * the data lives (sshfs, rclone, s3fs: `sync -f` returns at once having flushed nothing), while
 * they do pass on an fdatasync: there, files are synced one by one.
 */
const SYNCFS_FILE_SYSTEMS = new Set([0xef53, 0x58465342, 0x9123683e, 0xf2f52010, 0x01021994]);

/**
 * Does a syncfs on the file system of `p` flush what was written there (see above)? Null when
 * `p` cannot be asked (not there yet).
 */
export function syncfsFlushes(
  p: string,
  statfs: (p: string) => { type: number } = statfsSync,
): boolean | null {
  try {
    return SYNCFS_FILE_SYSTEMS.has(statfs(p).type);
  } catch {
    return null;
  }
}

let syncfsBroken = false;

/** Can syncFileSystems be used now: supported here, and `sync -f` not found missing. */
export function syncfsUsable(): boolean {
  return !syncfsBroken && syncfsSupported();
}

/**
 * syncfs(2) on the file system of each path: every write made to those file systems before the
 * call is durable when it resolves true (one call for any number of files, where fdatasync costs
 * a journal commit per file). Node.js has no binding for it; `sync -f` (coreutils, busybox)
 * makes the call. False when it cannot be used or did not succeed (no `sync -f`, an I/O error,
 * a time-out, a file system whose syncfs may flush nothing): the caller then syncs file by file,
 * which also names the file of a failed write.
 */
export function syncFileSystems(paths: readonly string[]): Promise<boolean> {
  if (paths.length === 0) return Promise.resolve(true);
  if (!syncfsUsable() || !paths.every((p) => syncfsFlushes(p) === true)) {
    return Promise.resolve(false);
  }
  const args = ['-f', ...paths.map((p) => path.resolve(p))];
  return new Promise((resolve) => {
    // A `sync` blocked in the kernel does not die of the kill that execFile's timeout sends
    // until the call returns: the wait itself is bounded here, and the child left to end.
    const timer = setTimeout(() => {
      log('sync -f still running after %d ms: syncing file by file', SYNCFS_TIMEOUT_MS);
      child.unref();
      resolve(false);
    }, SYNCFS_TIMEOUT_MS);
    const child = execFile(
      'sync',
      args,
      { timeout: SYNCFS_TIMEOUT_MS, windowsHide: true },
      (err, _stdout, stderr) => {
        clearTimeout(timer);
        if (!err) return resolve(true);
        const code = (err as NodeJS.ErrnoException).code;
        // No such program, or one without -f: never ask again.
        if (code === 'ENOENT' || /invalid option|unrecognized option/.test(String(stderr))) {
          syncfsBroken = true;
        }
        log('sync -f failed (%s): %s', code ?? err.message, String(stderr).trim());
        resolve(false);
      },
    );
  });
}
