/**
 * The current folder, for paths given relative to it. Node reads the current folder's path as
 * UTF-8: a byte that is not comes as U+FFFD, and a path resolved against it names a folder that
 * does not exist ("no such file or folder" for a file that is there). Such runs are refused up
 * front with the reason, as a path that is not UTF-8 given outright already is.
 */
import { realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { percentEncodeInvalidUtf8 } from '../metainfo/paths.js';

/** `-` (stdin, stdout): not a path. */
const NOT_A_PATH = /^-$/;

/**
 * Throws a UsageError when one of `paths` (undefined: a default path, relative to the current
 * folder) is relative and the current folder's path is not valid UTF-8. For paths tdl resolves
 * (outputs, `create`'s input): a relative file only read (a .torrent) is opened where it is,
 * whatever the folder's name.
 */
export function checkRelativePaths(paths: readonly (string | undefined)[]): void {
  const relative = paths.filter(
    (p) => p === undefined || (!NOT_A_PATH.test(p) && !path.isAbsolute(p)),
  );
  if (relative.length === 0) return;
  let cwd: string;
  try {
    cwd = process.cwd();
  } catch {
    // No current folder (deleted, or a path longer than the system allows): said where a path
    // is resolved (program.ts, cwdFailure).
    return;
  }
  if (!cwd.includes('\uFFFD')) return;
  try {
    // A name that does hold U+FFFD: the path names the folder.
    const named = statSync(cwd);
    const here = statSync('.');
    if (named.dev === here.dev && named.ino === here.ino) return;
  } catch {
    // the path names nothing: not the current folder
  }
  let shown = cwd;
  try {
    shown = percentEncodeInvalidUtf8(realpathSync.native('.', { encoding: 'buffer' }));
  } catch {
    // shown with U+FFFD
  }
  const first = relative[0];
  throw new UsageError(
    `${first === undefined ? '' : `${first}: `}the current folder's path is not valid UTF-8 ` +
      `(${shown}), so tdl cannot name what is in it` +
      `${first === undefined ? ' (the output goes there without -o)' : ''}: ` +
      'run tdl from another folder, or give absolute paths',
  );
}
