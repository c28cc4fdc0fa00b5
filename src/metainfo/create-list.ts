/**
 * What a folder puts in a torrent (`tdl create`): its files in torrent order, and the path rules.
 *
 * - Order: each folder's entries sorted by the UTF-8 bytes of their names, folders entered where
 *   they sort: the order of whole paths compared component by component.
 * - Regular files, and symbolic links whose target is inside the folder (kept as links, BEP 47
 *   `l`); a link that leads outside refuses the whole run. Names must be valid UTF-8 in NFC form
 *   and pass the parser's path checks.
 * - Anything else left out (special files, bad names, empty folders, broken links, links to what
 *   the torrent does not hold, an earlier torrent at the output path) is reported through `skip`,
 *   never dropped silently. An output path that is one of the input's other files is refused.
 */
import { lstatSync, readdirSync, realpathSync, statSync, type Dirent, type Stats } from 'node:fs';
import path from 'node:path';
import { DiskError, MetainfoError, systemErrorText, UsageError } from '../errors.js';
import {
  checkPathComponent,
  componentFromBytes,
  normalizeComponent,
  percentEncodeInvalidUtf8,
} from './paths.js';
import { MAX_PATH_DEPTH } from './paths.js';
import { MAX_FILES } from './torrent.js';
import { monotonicMs } from '../clock.js';

/** How long the listing runs before it lets the event loop run (Ctrl-C, the workers' boot). */
const YIELD_MS = 20;

/** What the listing needs of `tdl create`'s options (see CreateOptions). */
export interface ListOptions {
  /** Where the torrent will be written: that entry is skipped or refused (CreateOptions.exclude). */
  exclude?: string;
  /** The file stdout writes into (CreateOptions.excludeFile). */
  excludeFile?: { dev: number; ino: number };
  signal?: AbortSignal;
}

export interface SourceFile {
  /** Absolute path to read. */
  abs: string;
  /** Path components inside the torrent. */
  path: string[];
  length: number;
  /** Executable by its owner: BEP 47 `x`, so a download is made executable too. */
  executable?: boolean;
  /** A symbolic link (BEP 47 `l`, no data): its target's components under the torrent's folder. */
  symlink?: string[];
  /** A regular file as listed: which file it is, and when it last changed (see checkUnchanged). */
  listed?: Listed;
}

interface Listed {
  dev: number;
  ino: number;
  /** The later of its modification and status-change times (ms), as storage/stamps.ts takes it. */
  timeMs: number;
}

/** A regular file to hash, with BEP 47 `x` when its owner may execute it (as libtorrent does). */
export function sourceFile(abs: string, rel: string[], st: Stats): SourceFile {
  const listed = { dev: st.dev, ino: st.ino, timeMs: Math.max(st.mtimeMs, st.ctimeMs) };
  return (st.mode & 0o100) !== 0
    ? { abs, path: rel, length: st.size, executable: true, listed }
    : { abs, path: rel, length: st.size, listed };
}

/**
 * Checks that each regular file of `files` is still as it was listed: the same file, of the
 * same size, not modified since (nor its mode, which gives BEP 47 `x`). Hashing catches a size
 * change in what it reads; a file changed, removed or replaced after its bytes were hashed would
 * leave a torrent of bytes no longer there. One stat per file, once every piece is hashed.
 */
export function checkUnchanged(files: readonly SourceFile[]): void {
  for (const f of files) {
    const was = f.listed;
    if (was === undefined) continue;
    let st: Stats;
    try {
      st = statSync(f.abs);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw changedError(f.abs, 'was removed');
      throw ioError(f.abs, e);
    }
    const how =
      !st.isFile() || st.ino !== was.ino || st.dev !== was.dev
        ? 'was replaced'
        : st.size !== f.length
          ? `changed size (${f.length} bytes when listed, ${st.size} now)`
          : Math.max(st.mtimeMs, st.ctimeMs) !== was.timeMs ||
              ((st.mode & 0o100) !== 0) !== (f.executable === true)
            ? 'was modified'
            : null;
    if (how !== null) throw changedError(f.abs, how);
  }
}

function changedError(file: string, how: string): UsageError {
  return new UsageError(
    `${file} ${how} while the torrent was being made: no torrent written (run tdl create again)`,
  );
}

/** The file at a path, by identity (device and inode), or undefined when there is none. */
interface Identity {
  dev: number;
  ino: number;
}

export function identityOf(p: string): Identity | undefined {
  try {
    const st = statSync(p);
    return st.isFile() ? { dev: st.dev, ino: st.ino } : undefined;
  } catch {
    return undefined;
  }
}

export const sameFile = (a: Identity | undefined, st: Stats): boolean =>
  a !== undefined && a.dev === st.dev && a.ino === st.ino;

/**
 * Whether `abs` names the same folder entry as the output `out` (the same name in the same
 * folder, however either was reached): that entry is replaced when the torrent is written (a
 * temporary file renamed into place). Another name of the same file (a hard link) keeps what it
 * holds, as any input file does.
 */
export function isOutputEntry(abs: string, out: string): boolean {
  if (path.basename(abs) !== path.basename(out)) return false;
  const a = identityOfFolder(path.dirname(abs));
  const b = identityOfFolder(path.dirname(out));
  return a !== undefined && b !== undefined && a.dev === b.dev && a.ino === b.ino;
}

function identityOfFolder(p: string): Identity | undefined {
  try {
    const st = statSync(p);
    return { dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}

/**
 * The output, found among the input files as `entry` (its name there, which a hard link makes
 * differ from the output's): skipped when that is an earlier torrent, else refused.
 */
function outputInInput(shownPath: string, entry: string): string {
  if (/\.torrent$/i.test(entry)) return 'the output file itself (it is replaced)';
  throw new UsageError(
    `refusing to write the torrent over ${shownPath}: it is one of the files being shared`,
  );
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });
const ASCII = /^[\x00-\x7f]*$/;

/** A directory entry's name as a checked torrent path component, or the reason it is not one. */
export function entryName(raw: Buffer): { name: string; ascii: boolean } | { reason: string } {
  let name = raw.toString('latin1');
  // ASCII (most names) is its own UTF-8 and NFC form.
  const ascii = ASCII.test(name);
  if (!ascii) {
    let text: string;
    try {
      text = fatalUtf8.decode(raw);
    } catch {
      return { reason: 'name is not valid UTF-8' };
    }
    name = normalizeComponent(text);
    // The torrent's names are NFC (as tdl reads every torrent): a name on disk in another
    // form would be looked for under its NFC form when this folder is seeded, and not found.
    if (name !== text)
      return { reason: 'name is not in Unicode NFC form (rename it to include it)' };
  }
  try {
    checkPathComponent(name, 'name');
  } catch (e) {
    return { reason: (e as Error).message.replace(/^name: /, '') };
  }
  // tdl reads such names, but aria2c refuses the whole torrent ("directory traversal") and
  // libtorrent and Transmission write another name: the torrent would not be the folder.
  if (CONTROL.test(name)) {
    return {
      reason:
        'name holds a control character (a newline, a tab…): other clients refuse or rename it',
    };
  }
  return { name, ascii };
}

/** Control characters (NUL aside, refused as unsafe): U+0001–U+001F and U+007F. */
const CONTROL = /[\x01-\x1f\x7f]/;

function isInside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

export function ioError(what: string, e: unknown): DiskError {
  return new DiskError(`cannot read ${what}: ${systemErrorText(e)}`, { cause: e });
}

/** A folder entry with a usable name, and the UTF-8 bytes of that name (its sort key). */
interface Entry {
  dirent: Dirent<Buffer>;
  /** The name in the torrent (NFC). */
  name: string;
  /** The name on disk, as text. */
  text: string;
  key: Buffer;
}

/** A folder being listed: its entries in torrent order, and the next one to look at. */
interface Frame {
  /** The folder's absolute path, ending with a separator. */
  prefix: string;
  path: string[];
  entries: Entry[];
  next: number;
}

/** An entry's path as shown in a warning. */
function shown(d: Frame, text: string): string {
  return [...d.path, text].join('/');
}

/**
 * Lists the regular files under `dir`, in torrent order: each folder's entries are sorted by
 * the UTF-8 bytes of their names and folders are entered where they sort (depth first,
 * iteratively), which is the order of whole paths compared component by component.
 */
export async function listFolder(
  dir: string,
  opts: ListOptions,
  skip: (rel: string, reason: string) => void,
): Promise<SourceFile[]> {
  let realRoot: string;
  try {
    realRoot = realpathSync.native(dir);
  } catch (e) {
    throw ioError(dir, e);
  }
  const exclude = opts.exclude === undefined ? undefined : identityOf(opts.exclude);
  const out: SourceFile[] = [];
  // Synchronous on purpose: nothing else runs on this thread while listing (the workers boot
  // on theirs), and a promise per file cost several times the system call itself (and the
  // first one starts libuv's thread pool). The event loop runs every YIELD_MS all the same:
  // Ctrl-C is heard there (100,000 files take about a second to list).
  const open = (abs: string, rel: string[]): Frame => {
    let dirents: Dirent<Buffer>[];
    try {
      dirents = readdirSync(abs, { encoding: 'buffer', withFileTypes: true });
    } catch (e) {
      throw ioError(abs, e);
    }
    if (dirents.length === 0 && rel.length > 0) {
      skip(rel.join('/'), 'empty folder (a torrent holds files only)');
    }
    const entries: Entry[] = [];
    for (const dirent of dirents) {
      const named = entryName(dirent.name);
      if ('reason' in named) {
        // Shown as tdl info would name it (bytes that are not UTF-8 as %XX): two such names
        // decoded with U+FFFD would read the same.
        skip([...rel, percentEncodeInvalidUtf8(dirent.name)].join('/'), named.reason);
        continue;
      }
      entries.push(
        named.ascii
          ? { dirent, name: named.name, text: named.name, key: dirent.name }
          : {
              dirent,
              name: named.name,
              text: dirent.name.toString('utf8'),
              key: Buffer.from(named.name),
            },
      );
    }
    entries.sort((a, b) => Buffer.compare(a.key, b.key));
    return { prefix: abs.endsWith(path.sep) ? abs : abs + path.sep, path: rel, entries, next: 0 };
  };
  const stack: Frame[] = [open(dir, [])];
  let yieldAt = monotonicMs() + YIELD_MS;
  for (let n = 0; stack.length > 0; n++) {
    if ((n & 63) === 0) {
      if (monotonicMs() >= yieldAt) {
        await new Promise((resolve) => setImmediate(resolve));
        yieldAt = monotonicMs() + YIELD_MS;
      }
      if (opts.signal?.aborted) throw opts.signal.reason as Error;
    }
    const d = stack[stack.length - 1]!;
    if (d.next === d.entries.length) {
      stack.pop();
      continue;
    }
    const { dirent, name, text } = d.entries[d.next++]!;
    const rel = [...d.path, name];
    // Names were checked (no separator, not only dots): joining needs no normalising.
    const abs = d.prefix + text;
    if (dirent.isDirectory()) {
      stack.push(open(abs, rel));
      continue;
    }
    if (
      !dirent.isFile() &&
      (dirent.isFIFO() || dirent.isSocket() || dirent.isBlockDevice() || dirent.isCharacterDevice())
    ) {
      skip(shown(d, text), 'not a regular file');
      continue;
    }
    // A file needs its size; an entry whose type the file system did not tell needs it too.
    let st: Stats | undefined;
    if (!dirent.isSymbolicLink()) {
      try {
        st = lstatSync(abs);
      } catch (e) {
        throw ioError(abs, e);
      }
    }
    if (st === undefined || st.isSymbolicLink()) {
      let targetBytes: Buffer;
      try {
        targetBytes = realpathSync.native(abs, { encoding: 'buffer' });
      } catch (e) {
        const loop = (e as NodeJS.ErrnoException).code === 'ELOOP';
        skip(shown(d, text), loop ? 'a loop of symbolic links' : 'broken symbolic link');
        continue;
      }
      // A name that is not UTF-8 on the way comes as %XX (componentFromBytes).
      const { text: target, remapped } = componentFromBytes(targetBytes);
      if (!isInside(realRoot, target)) {
        // A link out of the folder to the output (`-o` names the link): the torrent is
        // written through it, as on the run that made it.
        if (opts.exclude !== undefined && !remapped && isOutputEntry(target, opts.exclude)) {
          skip(shown(d, text), outputInInput(shown(d, text), text));
          continue;
        }
        throw new UsageError(
          `${abs} is a symbolic link to ${target}, outside ${dir}: ` +
            'refusing to put it in the torrent (copy the target in, or remove the link)',
        );
      }
      if (target === realRoot) {
        skip(shown(d, text), 'symbolic link to the folder itself');
        continue;
      }
      if (remapped) {
        // Its target's name is not UTF-8: that file is skipped, so the link could not reach it.
        skip(shown(d, text), notInTorrent(path.relative(realRoot, target)));
        continue;
      }
      // Kept as a link (BEP 47): its target's data is in the torrent once, under the target's
      // own name, and a download (or this folder, seeded) has the same link in the same place.
      checkDepth(abs, rel);
      out.push({
        abs,
        path: rel,
        length: 0,
        symlink: path.relative(realRoot, target).split(path.sep),
      });
    } else if (st.isDirectory()) {
      stack.push(open(abs, rel));
    } else if (st.isFile()) {
      if (sameFile(exclude, st) && isOutputEntry(abs, opts.exclude!)) {
        skip(shown(d, text), outputInInput(shown(d, text), text));
        continue;
      }
      if (sameFile(opts.excludeFile, st)) {
        skip(shown(d, text), 'stdout, where the torrent is written');
        continue;
      }
      checkDepth(abs, rel);
      out.push(sourceFile(abs, rel, st));
    } else {
      skip(shown(d, text), 'not a regular file');
    }
    if (out.length > MAX_FILES) {
      // The torrent would be one tdl refuses to read (exit 3, as for the other such torrents).
      throw new MetainfoError(
        dir,
        `more than ${MAX_FILES.toLocaleString('en-US')} files, the most a torrent tdl reads holds`,
      );
    }
  }
  return linksInTorrent(out, skip);
}

/**
 * A path deeper than a torrent tdl reads may hold is refused (exit 3, as that torrent would be),
 * naming the file rather than the torrent's entry.
 */
function checkDepth(abs: string, rel: readonly string[]): void {
  if (rel.length > MAX_PATH_DEPTH) {
    throw new MetainfoError(
      abs,
      `its path in the torrent has more than ${MAX_PATH_DEPTH} components (${rel.length}), the most a torrent tdl reads holds`,
    );
  }
}

function notInTorrent(target: string): string {
  return `symbolic link to ${target}, which is not in the torrent`;
}

/**
 * `files` without the links whose target is neither one of its regular files nor a folder
 * holding one or a kept link (a skipped file, an empty folder, the output itself): a download
 * would make a dangling link. Each is skipped, saying so.
 */
function linksInTorrent(
  files: SourceFile[],
  skip: (rel: string, reason: string) => void,
): SourceFile[] {
  if (!files.some((f) => f.symlink !== undefined)) return files;
  // Every regular file's path and the folders on its way ('/' is in no component); the
  // folders on the way to each kept link too, which a download makes as well.
  const held = new Set<string>();
  const hold = (components: readonly string[], whole: boolean) => {
    let key = '';
    const n = whole ? components.length : components.length - 1;
    for (let i = 0; i < n; i++) {
      key = key === '' ? components[i]! : `${key}/${components[i]!}`;
      held.add(key);
    }
  };
  for (const f of files) if (f.symlink === undefined) hold(f.path, true);
  // A link to a folder that holds only links is kept once one of those is: until none is added.
  const kept = new Set<SourceFile>();
  for (let added = true; added;) {
    added = false;
    for (const f of files) {
      if (f.symlink === undefined || kept.has(f) || !held.has(f.symlink.join('/'))) continue;
      kept.add(f);
      hold(f.path, false);
      added = true;
    }
  }
  return files.filter((f) => {
    if (f.symlink === undefined || kept.has(f)) return true;
    skip(f.path.join('/'), notInTorrent(f.symlink.join('/')));
    return false;
  });
}
