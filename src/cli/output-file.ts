/**
 * A .torrent the CLI writes (`tdl create -o`, `--save-torrent`): where it goes is checked before
 * any work, and it is written whole or not at all.
 */
import {
  accessSync,
  closeSync,
  constants,
  fstatSync,
  openSync,
  readlinkSync,
  realpathSync,
  statSync,
} from 'node:fs';
import { Socket } from 'node:net';
import { isatty } from 'node:tty';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DiskError, systemErrorText, UsageError } from '../errors.js';
import { replaceFile } from '../storage/fs-util.js';

export interface FileTarget {
  /**
   * Where to write: an existing regular file's real path (through any links), the missing target
   * of a symbolic link, else the path.
   */
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
  // A trailing slash names a folder (path.resolve would drop it and write a file there).
  if (file.endsWith('/') || file.endsWith(path.sep)) {
    throw new UsageError(`${option} ${file} names a folder: name the .torrent file`);
  }
  const abs = path.resolve(file);
  const st = statOrNull(abs);
  if (st?.isDirectory())
    throw new UsageError(`${option} ${file} is a folder: name the .torrent file`);
  if (st !== null && !st.isFile()) return { path: abs, regular: false, shown: file };
  const real = st === null ? danglingTarget(abs, option, file) : realpathSync.native(abs);
  const dir = path.dirname(real);
  const dirSt = statOrNull(dir);
  if (!dirSt?.isDirectory()) {
    throw new UsageError(
      dirSt === null
        ? `${option} ${file}: no folder ${dir}`
        : `${option} ${file}: ${dir} is not a folder`,
    );
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch (e) {
    // The file is written beside its place, then renamed into it: its folder must be writable.
    throw new DiskError(`cannot write ${file}: its folder ${dir}: ${systemErrorText(e)}`, {
      cause: e,
    });
  }
  return { path: real, regular: true, shown: file };
}

/** The descriptor a stream of the CLI's (process.stdout) is open on; none for others (tests). */
export function fdOf(stream: unknown): number | undefined {
  const fd = (stream as { fd?: unknown }).fd;
  return typeof fd === 'number' ? fd : undefined;
}

/**
 * Whether `target` is what descriptor `fd` is open on (`/dev/stdout`, or the file or pipe stdout
 * is, by another name). With `pipeOnly`, only a pipe or socket counts: a device such as
 * /dev/null is shared harmlessly.
 */
export function isDescriptor(
  target: FileTarget,
  fd: number | undefined,
  pipeOnly = false,
): boolean {
  if (fd === undefined) return false;
  try {
    const a = statSync(target.path);
    if (pipeOnly && !a.isFIFO() && !a.isSocket()) return false;
    const b = fstatSync(fd);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

/**
 * Whether `target` is a terminal (`-o /dev/stdout` or `/dev/tty` in a terminal): a character
 * device, opened (without becoming the controlling terminal) to ask. False when it cannot be.
 */
export function isTerminal(target: FileTarget): boolean {
  if (!statOrNull(target.path)?.isCharacterDevice()) return false;
  let fd: number | undefined;
  try {
    fd = openSync(target.path, constants.O_WRONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
    return isatty(fd);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Most links followed from one -o path (Linux's own limit). */
const MAX_LINK_HOPS = 40;

/**
 * Where a path that does not exist is written: itself, or, when it is a symbolic link whose
 * target is missing, that target (as a shell's `>` creates it), never the link replaced. A link
 * that leads back to itself is refused.
 */
function danglingTarget(abs: string, option: string, file: string): string {
  let p = abs;
  for (let hops = 0; hops <= MAX_LINK_HOPS; hops++) {
    let to: string;
    try {
      to = readlinkSync(p);
    } catch {
      return p; // not a link (or not there): the path itself
    }
    p = path.resolve(path.dirname(p), to);
  }
  throw new UsageError(`${option} ${file}: a loop of symbolic links`);
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
      if (statOrNull(t.path)?.isFIFO()) await writeFifo(t.path, bytes, signal);
      else await writeFile(t.path, bytes, { signal });
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

/** How often a named pipe nobody reads yet is tried again. */
const FIFO_RETRY_MS = 50;

/**
 * Writes `bytes` into the named pipe `file` once a reader has opened it, as a shell's `>` would.
 * A blocking open would wait for the reader in a thread of libuv's pool that nothing can take
 * back (Node joins those threads at exit: Ctrl-C could not end tdl); a non-blocking one fails at
 * once with ENXIO while there is no reader, so it is tried again until there is one, or the run
 * is interrupted. The bytes then go through the event loop, as a socket.
 */
async function writeFifo(file: string, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
  let fd: number;
  for (;;) {
    if (signal?.aborted) throw signal.reason as Error;
    try {
      fd = openSync(file, constants.O_WRONLY | constants.O_NONBLOCK);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENXIO') throw e;
    }
    await sleep(FIFO_RETRY_MS, undefined, { signal }).catch(() => {});
  }
  const out = new Socket({ fd, readable: false, writable: true });
  const onAbort = () => out.destroy(signal?.reason as Error);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      out.once('error', reject);
      // The callback gets the error of a write the reader left (EPIPE) too: never a success.
      out.end(bytes, (err?: Error | null) => (err ? reject(err) : resolve()));
    });
  } finally {
    signal?.removeEventListener('abort', onAbort);
    out.destroy();
  }
}

function writeError(shown: string, e: unknown): DiskError {
  return new DiskError(`cannot write ${shown}: ${systemErrorText(e)}`, { cause: e });
}

function statOrNull(p: string) {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}
