/**
 * One tdl at a time on an output: `<output>.tdl-lock`, beside the resume file, holds the pid of
 * the process that writes there. A second run on the same output stops at once (DiskError, exit
 * 6) naming that pid, instead of colliding with the first on a working file or the resume file.
 * A lock whose process is gone (a crash, SIGKILL) is taken over.
 */
import { constants, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { DiskError } from '../errors.js';
import { withSuffix } from './names.js';
import { toDiskError } from './fs-util.js';

export const LOCK_SUFFIX = '.tdl-lock';

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

/**
 * Takes the lock of the output whose root is `root`; resolves with its release (which removes
 * the file). DiskError when another running tdl holds it.
 */
export async function lockOutput(root: string): Promise<() => Promise<void>> {
  const file = withSuffix(root, LOCK_SUFFIX);
  // The folder the output goes in (made by the storage anyway, which opens after the lock).
  try {
    await mkdir(path.dirname(file), { recursive: true });
  } catch (e) {
    throw toDiskError(e, `cannot create folder ${path.dirname(file)}`);
  }
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
      return async () => {
        held.delete(file);
        await rm(file, { force: true }).catch(() => {});
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
        throw toDiskError(e, `cannot create the lock file ${file}`);
      }
    }
    const holder = Number((await readFile(file, 'latin1').catch(() => '')).trim());
    if (running(holder, file)) {
      throw new DiskError(
        `${root} is in use by another tdl (pid ${holder}); if none runs, delete ${file}`,
      );
    }
    // Left by a run that did not end (or half written): taken over.
    await rm(file, { force: true });
  }
}
