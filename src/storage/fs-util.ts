/** Small file-system helpers shared by the storage modules. */
import type { ChildProcess } from 'node:child_process';
import fs, {
  lstatSync,
  opendirSync,
  statfsSync,
  type BigIntStats,
  type Dirent,
  type Stats,
} from 'node:fs';
import { lstat, mkdir, opendir, readdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { logger } from '../log.js';
import { DiskError, systemErrorText } from '../errors.js';
import { percentDecodeComponent } from '../metainfo/paths.js';
import { withSuffix } from './names.js';
import { monotonicMs } from '../clock.js';

const log = logger('tdl:storage');

/**
 * node:child_process, loaded when a sync first needs a child (many files, see syncfsPaths):
 * most downloads never do, and loading it is a millisecond of every start.
 */
const childProcess = () => process.getBuiltinModule('node:child_process');

/** Entries read from a folder per system call when it is listed inline. */
const LIST_BATCH = 256;

/**
 * Flags to open one of tdl's own files beside the output (resume file, parts file) or a file it
 * only reads, for reading: never through a link, and never waiting. An open for reading of a
 * FIFO blocks until a writer comes, in a thread of libuv's pool that nothing can take back:
 * --timeout, SIGTERM and a second Ctrl-C then wait for it too, for good. With O_NONBLOCK it
 * returns at once (a regular file reads the same), and the caller's fstat refuses it.
 */
export const OPEN_READ = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

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
 * big the folder). A folder that is not there, or is not a folder, holds nothing. With `inline`,
 * listed synchronously while such calls are fast (see Inline): a torrent of thousands of folders
 * would otherwise pay a round trip to the thread pool for each batch of entries of each one.
 */
export async function listNames(
  dir: string,
  want: ReadonlySet<string>,
  inline?: Inline,
): Promise<Set<string>> {
  return new Set((await listKinds(dir, want, inline)).keys());
}

/**
 * What an entry of a listing is, as the folder's entry says (no `lstat`): `other` is anything
 * else, or a kind the file system did not say, which only an `lstat` can tell.
 */
export type EntryKind = 'file' | 'dir' | 'link' | 'other';

function kindOf(ent: Dirent): EntryKind {
  if (ent.isFile()) return 'file';
  if (ent.isDirectory()) return 'dir';
  if (ent.isSymbolicLink()) return 'link';
  return 'other';
}

/** listNames, with what each name found is. */
export async function listKinds(
  dir: string,
  want: ReadonlySet<string>,
  inline?: Inline,
): Promise<Map<string, EntryKind>> {
  const found = new Map<string, EntryKind>();
  if (inline?.on) {
    try {
      inline.run(() => {
        const d = opendirSync(dir, { bufferSize: LIST_BATCH });
        try {
          for (let ent = d.readSync(); ent !== null; ent = d.readSync()) {
            if (want.has(ent.name)) found.set(ent.name, kindOf(ent));
          }
        } finally {
          d.closeSync();
        }
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return found;
      throw toDiskError(e, `cannot list ${dir}`);
    } finally {
      await inline.pace();
    }
    return found;
  }
  let d;
  try {
    d = await opendir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return found;
    throw toDiskError(e, `cannot list ${dir}`);
  }
  try {
    for await (const ent of d) if (want.has(ent.name)) found.set(ent.name, kindOf(ent));
  } catch (e) {
    throw toDiskError(e, `cannot list ${dir}`);
  }
  return found;
}

/**
 * The first `bytes` bytes of file `p` (a header: resume file, parts file), or null when it is
 * absent, shorter, unreadable or not a regular file (opened with OPEN_READ: never through a
 * link, never waiting on a FIFO).
 */
export async function readHeader(p: string, bytes: number): Promise<Buffer | null> {
  try {
    const h = await fs.promises.open(p, OPEN_READ);
    try {
      if (!(await h.stat()).isFile()) return null;
      const b = Buffer.alloc(bytes);
      let done = 0;
      while (done < bytes) {
        const { bytesRead } = await h.read(b, done, bytes - done, done);
        if (bytesRead <= 0) return null;
        done += bytesRead;
      }
      return b;
    } finally {
      await h.close();
    }
  } catch {
    return null;
  }
}

/**
 * Writes `bytes` as file `p` through a new file renamed over it: whatever is at `p` (a symlink
 * above all) is replaced, never written through. The new file is made with O_EXCL and
 * O_NOFOLLOW beside it; it is removed again if the write fails.
 */
export async function replaceFile(p: string, bytes: Uint8Array): Promise<void> {
  const tmp = withSuffix(p, `.${process.pid}-${Math.random().toString(36).slice(2, 10)}.tmp`);
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  const fh = await fs.promises.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
  try {
    try {
      await fh.writeFile(bytes);
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, p);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
}

/**
 * `mkdir -p`: makes `dir` and the folders above it that are missing; resolves with the first
 * folder it made (undefined when `dir` was there), as `mkdir(dir, { recursive: true })` does.
 * Node's own recursive mkdir retries a folder for as long as making its parent succeeds, so
 * where a parent exists but mkdir in it answers ENOENT (procfs: `-o /proc/self/x/y`,
 * `XDG_CACHE_HOME=/proc/…`) it spins for good and the call never settles. Here each folder is
 * tried again once, after its parent was made, and that answer is final.
 */
export async function makeFolders(dir: string, mode?: number): Promise<string | undefined> {
  try {
    await mkdir(dir, { mode });
    return dir;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && (await stat(dir).catch(() => null))?.isDirectory()) return undefined;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw e;
  }
  const first = await makeFolders(path.dirname(dir), mode);
  try {
    await mkdir(dir, { mode });
  } catch (e) {
    // Made by someone else meanwhile: there all the same.
    const there = (e as NodeJS.ErrnoException).code === 'EEXIST';
    if (!there || !(await stat(dir).catch(() => null))?.isDirectory()) throw e;
  }
  return first ?? dir;
}

export function toDiskError(e: unknown, what: string): DiskError {
  if (e instanceof DiskError) return e;
  const err = e as NodeJS.ErrnoException;
  // The path the call failed on, when `what` does not name it already.
  const named = (p: string) => what.endsWith(p) || what.includes(`${p}:`) || what.includes(`${p} `);
  const where = err.path && !named(err.path) ? ` (${err.path})` : '';
  // The system's words (systemErrorText: "no space left on device", …), but where tdl's own
  // reading of the code says more.
  const detail =
    err.code === 'EACCES'
      ? `permission denied${where}`
      : err.code === 'EPERM'
        ? `operation not permitted${where}`
        : err.code === 'ELOOP'
          ? `refusing to follow a symlink${where}`
          : err.code === 'EISDIR'
            ? 'is a folder'
            : err.code === 'ENFILE'
              ? 'too many open files'
              : err.code === 'EMFILE'
                ? "too many open files (this process's limit: raise it with ulimit -n)"
                : systemErrorText(e);
  return new DiskError(`${what}: ${detail}`, { cause: e });
}

/**
 * A symbolic link where a torrent's file or folder goes: the disk's state, not a fault of the
 * torrent (exit 6). tdl opens with O_NOFOLLOW and never reads or writes through one; the same
 * torrent works once the link is moved away.
 */
export function symlinkRefused(p: string, access: 'read' | 'write', wantDir: boolean): DiskError {
  const kind = wantDir ? 'folder' : 'file';
  return new DiskError(
    access === 'read'
      ? `cannot read ${p}: it is a symbolic link, and tdl never reads a torrent's ${kind}s ` +
          `through a link (replace it with the ${kind} itself)`
      : `refusing to write through the symbolic link ${p}: tdl never writes a torrent's ` +
          `${kind}s through a link (move it away, or choose another -o)`,
  );
}

/** A synchronous call slower than this turns inline calls off for INLINE_PAUSE_MS. */
export const INLINE_SLOW_MS = 50;
export const INLINE_PAUSE_MS = 5_000;
/** Inline calls run back to back for at most this long before the event loop gets a turn. */
export const INLINE_SLICE_MS = 10;
/** Largest read or write made inline: a bigger one is mostly copying, which a thread of the pool does. */
export const INLINE_MAX_BYTES = 64 * 1024;

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
    return this.enabled && (this.offUntil === 0 || monotonicMs() >= this.offUntil);
  }

  /** Make one synchronous call, timing it. */
  run<T>(fn: () => T): T {
    const t0 = monotonicMs();
    try {
      return fn();
    } finally {
      const t = monotonicMs() - t0;
      this.calls++;
      this.spent += t;
      if (t > INLINE_SLOW_MS) {
        this.offUntil = monotonicMs() + INLINE_PAUSE_MS;
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
 * lstatOrNull made through `inline` while inline calls are fast (for callers that look at
 * thousands of paths, each of which would otherwise cost a round trip to the thread pool), and
 * through the pool otherwise. Yields to the event loop as `inline.pace()` says.
 */
export async function lstatInline(
  p: string,
  inline: Inline,
  bigint: true,
): Promise<BigIntStats | null>;
export async function lstatInline(p: string, inline: Inline): Promise<Stats | null>;
export async function lstatInline(p: string, inline: Inline, bigint?: boolean) {
  if (!inline.on) return bigint ? lstatOrNull(p, true) : lstatOrNull(p);
  try {
    const st = inline.run(() =>
      bigint
        ? lstatSync(p, { bigint: true, throwIfNoEntry: false })
        : lstatSync(p, { throwIfNoEntry: false }),
    );
    return st ?? null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw toDiskError(e, `cannot read ${p}`);
  } finally {
    await inline.pace();
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
 * The shell of SyncHelper: one `sync -f` per line read, its exit status written back. A `sync`
 * without `-f` (an old busybox) ends it at once (syncfs of /dev/null flushes nothing): syncs then
 * spawn `sync -f`, whose error message marks syncfs as unusable for the rest of the run.
 */
const SYNC_HELPER_SCRIPT =
  'sync -f /dev/null 2>/dev/null || exit 0; ' +
  'while IFS= read -r p; do sync -f -- "$p" 2>/dev/null; echo $?; done';

/**
 * A small shell, started while tdl is small, that runs `sync -f` for each path written to it.
 *
 * Starting a program forks the process: every page of tdl is then write-protected, and the next
 * write to each one faults (measured on the bench VM: 0.4 s of CPU to touch 100 MB again after
 * one `sync -f` from a 100 MB process; a 3,000-file download spawned three). A shell forked at
 * open, before the download has grown the heap, costs that once and small; its own forks are of
 * a shell. Requests are answered in order, one line each. The helper never keeps tdl running
 * (its pipes are referenced only while an answer is awaited), and ends when its input closes (at
 * `stopSyncHelper`, or with tdl).
 */
class SyncHelper {
  private readonly child: ChildProcess;
  private readonly waiting: ((code: number | null) => void)[] = [];
  private buf = '';
  dead = false;

  get pid(): number | undefined {
    return this.child.pid;
  }

  constructor() {
    // Its own process group: a Ctrl-C at the terminal goes to tdl's group, and tdl's last
    // checkpoint still has the helper to sync through.
    this.child = childProcess().spawn('/bin/sh', ['-c', SYNC_HELPER_SCRIPT], {
      stdio: ['pipe', 'pipe', 'ignore'],
      detached: true,
      windowsHide: true,
    });
    // First: a spawn that failed (EMFILE under a tiny `ulimit -n`) says so by an 'error' event
    // on the next tick, which with no listener ended tdl with a stack trace.
    this.child.on('error', (e) => {
      log('sync helper: %s', e.message);
      this.end();
    });
    if (!this.child.stdin || !this.child.stdout) {
      this.dead = true;
      throw new Error('no pipes to the sync helper');
    }
    this.child.on('exit', () => this.end());
    this.child.stdin!.on('error', () => this.end());
    this.child.stdout!.setEncoding('latin1');
    this.child.stdout!.on('data', (chunk: string) => {
      this.buf += chunk;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        this.waiting.shift()?.(/^\d+$/.test(line) ? Number(line) : null);
      }
      this.idle();
    });
    this.child.unref();
    this.idle();
  }

  /** Run `sync -f` on one path: its exit status (null when the helper ended first). */
  sync(p: string): Promise<number | null> {
    if (this.dead) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.ref(true);
      this.child.stdin!.write(`${p}\n`);
    });
  }

  /** Stop: the shell ends when its input closes; a request left unanswered gets null. */
  end(kill = false): void {
    if (kill) this.child.kill('SIGKILL');
    if (this.dead) return;
    this.dead = true;
    this.child.stdin?.end();
    for (const w of this.waiting.splice(0)) w(null);
    this.ref(false);
  }

  private idle(): void {
    if (this.waiting.length === 0) this.ref(false);
  }

  private ref(on: boolean): void {
    for (const s of [this.child.stdin, this.child.stdout] as ({
      ref?: () => void;
      unref?: () => void;
    } | null)[]) {
      if (on) s?.ref?.();
      else s?.unref?.();
    }
  }
}

let helper: SyncHelper | null = null;
let helperUsers = 0;

/**
 * Start the sync helper (see SyncHelper) where syncfs can be used, for a caller that will sync
 * file systems later; each call is paired with a `stopSyncHelper`.
 */
export function startSyncHelper(): void {
  helperUsers++;
  if (helper && !helper.dead) return;
  if (!syncfsUsable()) return;
  try {
    helper = new SyncHelper();
  } catch (e) {
    // Syncs then spawn `sync -f` each.
    log('cannot start the sync helper: %s', (e as Error).message);
    helper = null;
  }
}

export function stopSyncHelper(): void {
  if (helperUsers > 0) helperUsers--;
  if (helperUsers === 0 && helper) {
    helper.end();
    helper = null;
  }
}

/** The helper's process id while it runs (for tests and logs). */
export function syncHelperPid(): number | null {
  return helper && !helper.dead ? (helper.pid ?? null) : null;
}

/** `sync -f` of each path through the helper; null when it is not running. */
async function syncThroughHelper(paths: readonly string[]): Promise<boolean | null> {
  const h = helper;
  if (!h || h.dead || paths.some((p) => p.includes('\n'))) return null;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), SYNCFS_TIMEOUT_MS);
    timer.unref();
  });
  try {
    const codes = await Promise.race([Promise.all(paths.map((p) => h.sync(p))), timeout]);
    if (codes === 'timeout') {
      log('sync -f still running after %d ms: syncing file by file', SYNCFS_TIMEOUT_MS);
      h.end(true);
      return false;
    }
    // 127, 126: no `sync` to run. Never ask again.
    if (codes.some((c) => c === 127 || c === 126)) syncfsBroken = true;
    if (codes.every((c) => c === 0)) return true;
    log('sync -f failed (%s)', codes.join(', '));
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * syncfs(2) on the file system of each path: every write made to those file systems before the
 * call is durable when it resolves true (one call for any number of files, where fdatasync costs
 * a journal commit per file). Node.js has no binding for it; `sync -f` (coreutils, busybox)
 * makes the call, through the sync helper when it runs. False when it cannot be used or did not
 * succeed (no `sync -f`, an I/O error, a time-out, a file system whose syncfs may flush
 * nothing): the caller then syncs file by file, which also names the file of a failed write.
 */
export async function syncFileSystems(paths: readonly string[]): Promise<boolean> {
  if (paths.length === 0) return true;
  if (!syncfsUsable() || !paths.every((p) => syncfsFlushes(p) === true)) return false;
  const resolved = paths.map((p) => path.resolve(p));
  const viaHelper = await syncThroughHelper(resolved);
  if (viaHelper !== null) return viaHelper;
  const args = ['-f', ...resolved];
  return new Promise((resolve) => {
    // A `sync` blocked in the kernel does not die of the kill that execFile's timeout sends
    // until the call returns: the wait itself is bounded here, and the child left to end.
    const timer = setTimeout(() => {
      log('sync -f still running after %d ms: syncing file by file', SYNCFS_TIMEOUT_MS);
      child.unref();
      resolve(false);
    }, SYNCFS_TIMEOUT_MS);
    const child = childProcess().execFile(
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

/** What verify and seed say of a file onDiskUnmapped finds. */
export const UNMAPPED_NOTE =
  "it is there under its name's own bytes, which are not UTF-8: tdl names such a file with %XX " +
  'for each of those bytes, as tdl info shows; rename it';

/**
 * Whether `file` (under `under`, each component of `file` as tdl names it) is on disk under the
 * raw bytes its torrent gives (`caf\xE9.bin` for `caf%E9.bin`: a name that is not UTF-8, which
 * tdl maps to `%XX`, see componentFromBytes). Such data reads as missing: said, so that it can
 * be renamed. False when no component holds a `%XX`.
 */
async function onDiskUnmapped(under: string, file: string): Promise<boolean> {
  const rel = path.relative(under, file);
  if (!/%[0-9A-F]{2}/.test(rel) || rel.startsWith('..')) return false;
  const parts: Buffer[] = [Buffer.from(under)];
  for (const c of rel.split(path.sep)) {
    // A name with a `%` not followed by two hex digits was never mapped.
    const mapped = c.includes('%') && !/%(?![0-9A-F]{2})/.test(c);
    parts.push(Buffer.from(path.sep), mapped ? percentDecodeComponent(c) : Buffer.from(c));
  }
  const raw = Buffer.concat(parts);
  return lstat(raw).then(
    () => true,
    () => false,
  );
}

/**
 * Where a missing `file` (under `under`) is on disk under another name, if it is: its own name in
 * another Unicode form (`nfd`, see otherUnicodeForm), or the raw bytes of a name that is not
 * UTF-8 (`rawBytes`, see onDiskUnmapped). For the reports of files that read as missing.
 */
export async function otherNameOnDisk(
  under: string,
  file: string,
): Promise<{ nfd: string } | { rawBytes: true } | null> {
  const nfd = await otherUnicodeForm(file);
  if (nfd !== null) return { nfd };
  return (await onDiskUnmapped(under, file)) ? { rawBytes: true } : null;
}

/**
 * The name in `file`'s folder that is `file`'s own name in another Unicode form (NFD, as some
 * clients write the names of an NFD torrent), or null. tdl names files in NFC: such data reads as
 * missing, though it looks the same on screen.
 */
async function otherUnicodeForm(file: string): Promise<string | null> {
  const want = path.basename(file).normalize('NFC');
  let names: string[];
  try {
    names = await readdir(path.dirname(file));
  } catch {
    return null;
  }
  return names.find((n) => n !== want && n.normalize('NFC') === want) ?? null;
}
