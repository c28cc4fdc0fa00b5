/**
 * A .torrent the CLI writes (`tdl create -o`, `--save-torrent`): where it goes is checked before
 * any work, and it is written whole or not at all.
 */
import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DiskError, UsageError } from '../errors.js';
import { replaceFile } from '../storage/fs-util.js';

export interface FileTarget {
  /** Where to write: an existing regular file's real path (through any links), else the path. */
  path: string;
  /** False for a pipe or a device, which is written to and never replaced. */
  regular: boolean;
  /** The path as the user gave it, for messages. */
  shown: string;
}

/**
 * Checks where `file` (given with `option`) can be written: a folder is refused, and so is a
 * path whose folder is missing (UsageError, exit 2) or not writable (DiskError, exit 6).
 */
export function fileTarget(file: string, option: string): FileTarget {
  // Everywhere else `-` is stdout, which --save-torrent cannot write to (it carries the events,
  // the stream or tdl info's text): a file named `-` would be a surprise.
  if (file === '-') {
    throw new UsageError(
      `${option} - cannot write to stdout: name a file (./- for a file named -)`,
    );
  }
  const abs = path.resolve(file);
  const st = statOrNull(abs);
  if (st?.isDirectory())
    throw new UsageError(`${option} ${file} is a folder: name the .torrent file`);
  if (st !== null && !st.isFile()) return { path: abs, regular: false, shown: file };
  const real = st === null ? abs : realpathSync.native(abs);
  const dir = path.dirname(real);
  if (!statOrNull(dir)?.isDirectory()) throw new UsageError(`${option} ${file}: no folder ${dir}`);
  try {
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw writeError(file, e);
  }
  return { path: real, regular: true, shown: file };
}

/**
 * Writes `bytes` to the target: a regular file beside it first, then renamed into place (a
 * failed run never leaves half a .torrent); a pipe or a device as a shell's `>` would.
 */
export async function writeTarget(
  t: FileTarget,
  bytes: Uint8Array,
  signal?: AbortSignal,
): Promise<void> {
  if (!t.regular) {
    try {
      await writeFile(t.path, bytes, { signal });
    } catch (e) {
      if (signal?.aborted) throw signal.reason as Error;
      throw writeError(t.shown, e);
    }
    return;
  }
  try {
    await replaceFile(t.path, bytes);
  } catch (e) {
    throw writeError(t.shown, e);
  }
}

function writeError(shown: string, e: unknown): DiskError {
  const code = (e as NodeJS.ErrnoException).code ?? String(e);
  return new DiskError(`cannot write ${shown}: ${code}`, { cause: e });
}

function statOrNull(p: string) {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}
