/**
 * A lock file holding the pid of its holder: taken with O_EXCL, taken over when its process is
 * gone (a crash, SIGKILL). Used for an output (`<output>.tdl-lock`, storage/lock.ts) and for the
 * DHT node id of the cache file (dht/dht.ts).
 */
import { constants, readFileSync } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';

/** Lock files this process holds (several runs may share one process, as in tests). */
const held = new Set<string>();

/** Is `pid` a running process that may be a tdl (a node process, where /proc tells)? */
function running(pid: number, file: string): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  // Ours: held by a run still going in this process, or left by one that could not remove it.
  if (pid === process.pid) return held.has(file);
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: alive, another user's.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // A pid reused by another program since the holder died does not hold the lock.
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('node');
  } catch {
    return true;
  }
}

export type PidLock =
  /** Taken: `release` removes the file. */
  | { release: () => Promise<void> }
  /** Held by the running process `heldBy`. */
  | { heldBy: number };

/**
 * Takes the lock file `file` (its folder must exist). File-system errors other than the file's
 * existence are thrown as they come.
 */
export async function takePidLock(file: string): Promise<PidLock> {
  for (let attempt = 0; ; attempt++) {
    try {
      const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
      const fh = await open(file, flags, 0o644);
      try {
        await fh.writeFile(`${process.pid}\n`);
      } finally {
        await fh.close();
      }
      held.add(file);
      return {
        release: async () => {
          held.delete(file);
          await rm(file, { force: true }).catch(() => {});
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
    }
    const holder = Number((await readFile(file, 'latin1').catch(() => '')).trim());
    if (running(holder, file)) return { heldBy: holder };
    // Left by a run that did not end (or half written): taken over.
    await rm(file, { force: true });
  }
}
