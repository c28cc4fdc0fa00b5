/**
 * One tdl at a time on an output: `<output>.tdl-lock`, beside the resume file, holds the pid of
 * the process that writes there. A second run on the same output stops at once (DiskError, exit
 * 6) naming that pid, instead of colliding with the first on a working file or the resume file.
 * A lock whose process is gone (a crash, SIGKILL) is taken over.
 */
import path from 'node:path';
import { DiskError, systemErrorText } from '../errors.js';
import { lockHolder, takePidLock } from '../pid-lock.js';
import { withSuffix } from './names.js';
import { lstatOrNull, makeFolders, toDiskError } from './fs-util.js';

export const LOCK_SUFFIX = '.tdl-lock';

/** The output's lock is held by another running tdl. */
export class OutputInUseError extends DiskError {}

/**
 * Takes the lock of the output whose root is `root`; resolves with its release (which removes
 * the file). DiskError when another running tdl holds it.
 */
export async function lockOutput(root: string): Promise<() => Promise<void>> {
  const file = withSuffix(root, LOCK_SUFFIX);
  // The folder the output goes in (made by the storage anyway, which opens after the lock).
  try {
    await makeFolders(path.dirname(file));
  } catch (e) {
    throw toDiskError(e, `cannot create folder ${path.dirname(file)}`);
  }
  let lock;
  try {
    lock = await takePidLock(file);
  } catch (e) {
    // Not toDiskError: it names the path of a failed call, here a temporary file beside the
    // lock that the user never sees.
    if (e instanceof DiskError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOTLOCK') {
      throw new DiskError(
        `${file} is in the way of the lock file: it is not a tdl lock file (move it away)`,
      );
    }
    // Opened without following links: one at the lock's place is not tdl's to go through.
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new DiskError(
        `${file} is a symbolic link in the place of the lock file: refusing to follow it (move it away)`,
        { cause: e },
      );
    }
    throw new DiskError(`cannot create the lock file ${file}: ${systemErrorText(e)}`, { cause: e });
  }
  if ('heldBy' in lock) {
    throw new OutputInUseError(
      `${root} is in use by another tdl (pid ${lock.heldBy}); if none runs, delete ${file}`,
    );
  }
  return lock.release;
}

/**
 * Before the folders an output goes in are made: none of those still missing may be the output
 * of a running tdl (its lock beside it), which writes a file of that name. `-o X/` made X a
 * folder under a run of `-o X`, which then failed at its very end, its file unable to take the
 * folder's name. OutputInUseError naming the run.
 */
export async function refuseFoldersInUse(dir: string): Promise<void> {
  for (let d = path.resolve(dir); d !== path.dirname(d); d = path.dirname(d)) {
    if ((await lstatOrNull(d)) !== null) return;
    const pid = await lockHolder(withSuffix(d, LOCK_SUFFIX));
    if (pid !== null) {
      throw new OutputInUseError(
        `${d} is the output of another tdl (pid ${pid}), which writes a file there: ` +
          `it cannot become a folder; if none runs, delete ${withSuffix(d, LOCK_SUFFIX)}`,
      );
    }
  }
}
