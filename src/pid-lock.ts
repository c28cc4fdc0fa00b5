/**
 * A lock file holding the pid of its holder, taken over when its process is gone (a crash,
 * SIGKILL). Used for an output (`<output>.tdl-lock`, storage/lock.ts) and for the DHT node id of
 * the cache file (dht/dht.ts).
 *
 * Taking it is atomic: the pid is written to a file of our own, which is then hard-linked to the
 * lock's name (`link` fails if the name exists), so a lock is never seen empty. A stale lock is
 * moved aside by `rename` and removed only if what was moved is the file whose dead pid was
 * read; if another run replaced it meanwhile, its lock is put back. Two runs that find the same
 * stale lock never both take it.
 *
 * The file of our own (`<lock>.<pid>-<8 hex>`) is removed once the lock is taken or found held;
 * one left by a run that died in between (a crash, SIGKILL) is removed by the next run that
 * takes the lock, when no process of its pid runs.
 */
import { randomBytes } from 'node:crypto';
import { constants, readFileSync } from 'node:fs';
import { link, lstat, open, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { withSuffix } from './storage/names.js';

/** Lock files this process holds (several runs may share one process, as in tests). */
const held = new Set<string>();

/** Attempts before giving up on a lock that keeps changing under us. */
const ATTEMPTS = 5;

/** Is `pid` a running process that may be a tdl (a node process, where /proc tells)? */
function running(pid: number, file: string): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  // Ours: held by a run still going in this process, or left by one that could not remove it.
  if (pid === process.pid) return held.has(file);
  if (!alive(pid)) return false;
  try {
    // A pid reused by another program since the holder died does not hold the lock.
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('node');
  } catch {
    return true;
  }
}

/**
 * The lock file's pid and identity; null when it is gone. Opened without blocking and without
 * following a link: a FIFO or a device in its place is an error, not a wait.
 */
async function readLock(file: string): Promise<{ pid: number; dev: number; ino: number } | null> {
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      throw Object.assign(new Error(`${file} is not a regular file`), { code: 'ENOTREG' });
    }
    const buf = Buffer.alloc(32);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const text = buf.toString('latin1', 0, bytesRead).trim();
    // A pid, or nothing (an older tdl's lock): anything else is a file of someone else's, which
    // taking the lock over would remove.
    if (!/^\d{0,10}$/.test(text)) {
      throw Object.assign(new Error(`${file} is not a lock file`), { code: 'ENOTLOCK' });
    }
    return { pid: Number(text), dev: st.dev, ino: st.ino };
  } finally {
    await fh.close();
  }
}

/**
 * The pid of the running process that holds the lock file `file`, or null: none there, its
 * process gone, or anything that is not a lock of ours in its place (read, never taken).
 */
export async function lockHolder(file: string): Promise<number | null> {
  try {
    const seen = await readLock(file);
    return seen !== null && running(seen.pid, file) ? seen.pid : null;
  } catch {
    return null;
  }
}

export type PidLock =
  /** Taken: `release` removes the file. */
  | { release: () => Promise<void> }
  /** Held by the running process `heldBy`. */
  | { heldBy: number };

/**
 * Takes the lock file `file` (its folder must exist). File-system errors are thrown as they
 * come (`ENOTREG`: something other than a file is in the lock's place; `ENOTLOCK`: a file that
 * holds something other than a pid, left as it is).
 */
export async function takePidLock(file: string): Promise<PidLock> {
  // Beside the lock, and a name no longer than the lock's own may be (see withSuffix).
  const unique = () => withSuffix(file, `.${process.pid}-${randomBytes(4).toString('hex')}`);
  const mine = unique();
  const fh = await open(
    mine,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o644,
  );
  let dev: number;
  let ino: number;
  try {
    await fh.writeFile(`${process.pid}\n`);
    // The lock, once linked, is this very file: its identity, for the release.
    ({ dev, ino } = await fh.stat());
  } catch (e) {
    // A full disk, say: the file made for the lock goes too.
    await fh.close().catch(() => {});
    await unlink(mine).catch(() => {});
    throw e;
  }
  await fh.close();
  try {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      try {
        await link(mine, file);
        held.add(file);
        await sweepLeftovers(file);
        return { release: () => release(file, dev, ino) };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const seen = await readLock(file);
      if (seen === null) continue; // released meanwhile
      if (running(seen.pid, file)) return { heldBy: seen.pid };
      // Left by a run that did not end (or written by an older tdl, and empty): moved aside,
      // then removed if it is the one read.
      const aside = unique();
      try {
        await rename(file, aside);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      const moved = await lstat(aside);
      if (moved.dev !== seen.dev || moved.ino !== seen.ino) {
        // Another run took it over first: its lock goes back (unless one is there again).
        await link(aside, file).catch(() => {});
      }
      await unlink(aside).catch(() => {});
    }
    throw Object.assign(new Error(`${file} keeps changing`), { code: 'EBUSY' });
  } finally {
    await unlink(mine).catch(() => {});
  }
}

/** The name of a file of our own for `file`, as `takePidLock` makes them: its pid, or null. */
function leftoverPid(name: string, file: string): number | null {
  const m = /\.(\d{1,10})-([0-9a-f]{8})$/.exec(name);
  if (!m) return null;
  return path.basename(withSuffix(file, m[0])) === name ? Number(m[1]) : null;
}

/** Is any process of this pid running, whatever it is (EPERM: another user's)? */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the files of our own that runs which died left beside `file` (best effort: a folder
 * that cannot be listed, or a file that cannot be removed, is left as it is).
 */
async function sweepLeftovers(file: string): Promise<void> {
  const dir = path.dirname(file);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = leftoverPid(name, file);
    if (pid === null || pid === 0 || alive(pid)) continue;
    await unlink(path.join(dir, name)).catch(() => {});
  }
}

/** Removes the lock if it is still the one this run made. */
async function release(file: string, dev: number, ino: number): Promise<void> {
  held.delete(file);
  try {
    const st = await lstat(file);
    if (st.dev === dev && st.ino === ino) await unlink(file);
  } catch {
    // Gone already.
  }
}
