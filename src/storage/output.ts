/**
 * Where a torrent's data goes on disk, following cp: `-o PATH` naming an existing directory puts
 * the torrent's file or top folder inside it; any other PATH becomes the file (single-file
 * torrent) or the top folder (multi-file torrent). One exception keeps a run repeatable: when
 * PATH is an existing folder that is this multi-file torrent's own top folder from an earlier run
 * (PATH/<name> does not exist, and PATH.tdl-resume belongs to this torrent, or the torrent's files
 * in PATH all fit it and are all there or include a `.part` working file, or PATH.tdl-lock was left
 * beside PATH and PATH holds only the torrent's empty folders), PATH stays the top folder, so
 * the same command resumes or re-checks instead of starting again one level down.
 *
 * Every file path is built from components that
 * the metainfo parser has already checked one by one, and is checked again here to stay inside
 * the output root; a symlink already present where a torrent-derived component would go is
 * refused, because writing through it could land outside the output.
 */
import { access, opendir, realpath, stat } from 'node:fs/promises';
import { constants, type Stats } from 'node:fs';
import path from 'node:path';
import { DiskError, MetainfoError, systemErrorText } from '../errors.js';
import type { FileList } from '../metainfo/torrent.js';
import {
  Inline,
  listKinds,
  listNames,
  lstatInline,
  lstatOrNull,
  readHeader,
  symlinkRefused,
  toDiskError,
} from './fs-util.js';
import { LOCK_SUFFIX } from './lock.js';
import { METADATA_SUFFIX, PART_SUFFIX, RESUME_SUFFIX, withSuffix } from './names.js';
import { PARTS_SUFFIX, partsInfoHash } from './parts.js';
import { RESUME_MAGIC } from './resume.js';
import { makeRoom } from '../bounded.js';

export interface OutputFile {
  /** Absolute path of the file on disk. */
  path: string;
  length: number;
  offset: number;
  /** BEP 47 padding: zeros by definition, never created, opened or written. */
  padding?: boolean;
}

export interface OutputPlan {
  /** The torrent's root on disk: the file itself (single-file) or the top folder (multi-file). */
  root: string;
  /** The folder that holds `root`. */
  parent: string;
  /**
   * Every file, an object each. A plan made by planOutput makes them on first read and keeps
   * them: code that runs a download reads planFileCount / planFilePath / planFile instead.
   */
  files: OutputFile[];
  /** Folders to create, parents first. */
  dirs: string[];
  /**
   * A download's `-o` folder that holds files of the torrent's names, some at other sizes (as
   * `verify` would read them): not taken as the torrent's folder, which goes inside it.
   */
  lookalike?: string;
}

/** Paths of recent files kept by a plan (a write touches a few files at a time, in order). */
const RECENT_PATHS = 64;

/** Longest path the system takes, in bytes (Linux's PATH_MAX, 4096, less its NUL). */
export const MAX_PATH_BYTES = 4095;

/**
 * A file's path (and its working name, with `.part`) must fit MAX_PATH_BYTES: a longer one could
 * never be created, and the run stopped while making its folders, leaving them behind.
 */
function checkPathLength(p: string): void {
  if (p.length + PART_SUFFIX.length <= MAX_PATH_BYTES / 3) return; // surely short: no count
  const bytes = Buffer.byteLength(p) + PART_SUFFIX.length;
  if (bytes <= MAX_PATH_BYTES) return;
  const shown = `${p.slice(0, 60)}…${p.slice(-40)}`;
  throw new DiskError(
    `${shown}: with its working name this path is ${bytes} bytes, longer than the ${MAX_PATH_BYTES} the system takes: give a shorter -o`,
  );
}

/**
 * The plan of a torrent's output, holding no object per file: each file's path is joined from
 * the root and the torrent's components when asked (the components were checked when the plan
 * was made), and the last few are kept.
 */
class PlannedOutput implements OutputPlan {
  lookalike?: string;
  private list: OutputFile[] | null = null;
  private readonly recent = new Map<number, string>();

  constructor(
    readonly root: string,
    readonly parent: string,
    readonly dirs: string[],
    private readonly multiFile: boolean,
    private readonly source: TorrentShape['files'],
  ) {}

  get count(): number {
    return this.multiFile ? this.source.length : 1;
  }

  pathOf(i: number): string {
    if (!this.multiFile) return this.root;
    let p = this.recent.get(i);
    if (p === undefined) {
      p = path.join(this.root, ...this.source.at(i)!.path);
      makeRoom(this.recent, RECENT_PATHS);
      this.recent.set(i, p);
    }
    return p;
  }

  fileOf(i: number): OutputFile {
    if (!this.multiFile) return { path: this.root, length: this.source.at(0)!.length, offset: 0 };
    const f = this.source.at(i)!;
    return {
      path: this.pathOf(i),
      length: f.length,
      offset: f.offset,
      ...(f.padding ? { padding: true } : {}),
    };
  }

  isPadding(i: number): boolean {
    return this.multiFile && this.source.at(i)!.padding === true;
  }

  isLink(i: number): boolean {
    return this.multiFile && this.source.at(i)!.symlink !== undefined;
  }

  get files(): OutputFile[] {
    return (this.list ??= Array.from({ length: this.count }, (_, i) => this.fileOf(i)));
  }
}

/** How many files a plan has. */
export function planFileCount(plan: OutputPlan): number {
  return plan instanceof PlannedOutput ? plan.count : plan.files.length;
}

/** The path of file `i` of a plan, without making the plan's file list. */
export function planFilePath(plan: OutputPlan, i: number): string {
  return plan instanceof PlannedOutput ? plan.pathOf(i) : plan.files[i]!.path;
}

/** File `i` of a plan (a new object from a planOutput plan), without making its file list. */
export function planFile(plan: OutputPlan, i: number): OutputFile {
  return plan instanceof PlannedOutput ? plan.fileOf(i) : plan.files[i]!;
}

/** Is file `i` of a plan BEP 47 padding? */
export function planFilePadding(plan: OutputPlan, i: number): boolean {
  return plan instanceof PlannedOutput ? plan.isPadding(i) : plan.files[i]!.padding === true;
}

/**
 * Is file `i` of a plan a BEP 47 link (`l`, no data)? Storage never creates, opens or writes it:
 * storage/attributes.ts makes the symbolic link once the torrent is complete, and later runs
 * find it there.
 */
export function planFileLink(plan: OutputPlan, i: number): boolean {
  return plan instanceof PlannedOutput && plan.isLink(i);
}

/**
 * What the run does to the output: `write` (a download), or `read` (`tdl verify`, and `tdl seed`
 * until it has found the data complete). A symbolic link where the torrent has a file or folder
 * is refused either way; only the message and the kind of error differ.
 */
export type OutputAccess = 'write' | 'read';

interface TorrentShape {
  name: string;
  multiFile: boolean;
  /** An array, or a FileList that makes each entry when asked (see metainfo/torrent.ts). */
  files: FileList<{
    path: readonly string[];
    length: number;
    offset: number;
    padding?: boolean;
    /** BEP 47 `l`: made a symbolic link once the torrent is complete (storage/attributes.ts). */
    symlink?: readonly string[];
  }>;
  /** Recognises this torrent's resume file (see above). */
  infoHash?: Buffer;
}

/**
 * tdl's own files beside a torrent's root (`<root>` + suffix): worth nothing without its data.
 * A function, not a constant: names.ts and this module import each other, so a constant made of
 * its suffixes could be made before they are.
 */
export function bookkeepingSuffixes(): string[] {
  return [RESUME_SUFFIX, PARTS_SUFFIX, METADATA_SUFFIX, LOCK_SUFFIX];
}

/**
 * Whether a download whose root is `root` writes (or removes) the path `target`: the root, its
 * `.part` and tdl's files beside it; given the torrent (`t`), also one of a multi-file
 * torrent's files, a file's `.part`, or a folder on the way to one. Paths as resolved.
 */
export function outputWrites(
  root: string,
  target: string,
  t?: { multiFile: boolean; files: FileList<{ path: readonly string[]; padding?: boolean }> },
): boolean {
  if (target === root) return true;
  if ([PART_SUFFIX, ...bookkeepingSuffixes()].some((s) => withSuffix(root, s) === target)) {
    return true;
  }
  if (!t?.multiFile || !target.startsWith(root + path.sep)) return false;
  for (let i = 0; i < t.files.length; i++) {
    const f = t.files.at(i)!;
    if (f.padding) continue;
    const p = path.join(root, ...f.path);
    if (p === target || withSuffix(p, PART_SUFFIX) === target) return true;
    if (p.startsWith(target + path.sep)) return true;
  }
  return false;
}

/**
 * Whether the file at `target` (its path as /proc names it: links followed; `st` its stat) is one
 * a download whose root is `root` writes, by whichever name: the path itself, the same path
 * through a link to a folder on the way, or, for a file with other links, any of the paths the
 * run writes that is the same inode. Returns the run's path for it, or null.
 */
export async function outputWritesFile(
  root: string,
  t: TorrentShape,
  target: string,
  st: { ino: number; dev: number; nlink: number },
): Promise<string | null> {
  if (outputWrites(root, target, t)) return target;
  const real = await realFolders(root);
  if (outputWrites(real, target, t)) return target;
  if (st.nlink <= 1) return null;
  const paths = [
    root,
    withSuffix(root, PART_SUFFIX),
    ...bookkeepingSuffixes().map((x) => withSuffix(root, x)),
  ];
  if (t.multiFile) {
    for (let i = 0; i < t.files.length; i++) {
      const f = t.files.at(i)!;
      if (!f.padding)
        paths.push(inside(root, f.path), withSuffix(inside(root, f.path), PART_SUFFIX));
    }
  }
  for (const p of paths) {
    const o = await statOrNull(p);
    if (o !== null && o.ino === st.ino && o.dev === st.dev) return p;
  }
  return null;
}

/** `p` with the links on the way to it followed, as far as it exists. */
async function realFolders(p: string): Promise<string> {
  for (let at = p; ; at = path.dirname(at)) {
    try {
      return path.join(await realpath(at), path.relative(at, p));
    } catch {
      if (at === path.dirname(at)) return p;
    }
  }
}

/**
 * Where a torrent's root goes for `-o output` (see planOutput), from what is on disk now: with
 * `target` (the output resolved) and what stands there.
 */
export async function outputRoot(
  t: TorrentShape,
  output: string | undefined,
  access: OutputAccess = 'write',
): Promise<{ root: string; target: string; st: Stats | null; lookalike?: string }> {
  let target = path.resolve(output ?? '.');
  const st = await statOrNull(target);
  // A link to a folder (`-o ~/dl`, `~/dl` a link) is the folder it leads to: files, resume file
  // and lock are then named from one path, whichever way the folder is reached, and a second
  // tdl through the link finds the first one's lock.
  if (st?.isDirectory() && (await lstatOrNull(target))?.isSymbolicLink()) {
    target = await realpath(target);
  }
  // `-o new/`: a folder to put the torrent in, as an existing one would be (resolve() drops the
  // slash, which made a single file named `new`).
  const folderNamed = output !== undefined && output.endsWith('/');
  let root: string;
  if (folderNamed && !st) {
    root = path.join(target, t.name);
  } else if (folderNamed && !st!.isDirectory()) {
    throw new DiskError(`output ${target} exists and is not a directory`);
  } else if (st?.isDirectory()) {
    const nested = path.join(target, t.name);
    const fresh = t.multiFile && !(await lstatOrNull(nested));
    root = fresh && (await isOwnFolder(target, t, access)) ? target : nested;
    // Files of the torrent's names at other sizes (a damaged copy, or someone else's files):
    // a download leaves them alone and starts again inside, which the user should hear of.
    if (fresh && root === nested && access === 'write' && (await isOwnFolder(target, t, 'read'))) {
      return { root, target, st, lookalike: target };
    }
  } else if (st && t.multiFile) {
    throw new DiskError(`output ${target} exists and is not a directory`);
  } else if (access === 'read' && output !== undefined && st?.isFile()) {
    // A single file the user named, to read (verify, seed): through a link they made too (as
    // `tdl create` took it), read at the file it leads to, since tdl opens no file through a
    // link. A link at a path made from the torrent's name stays refused.
    root = (await lstatOrNull(target))?.isSymbolicLink() ? await realpath(target) : target;
  } else {
    root = target;
  }
  return { root, target, st };
}

/**
 * What can be said of `-o output` before the torrent is known (a magnet link's metadata may take
 * --timeout to come): a file on the way to it, a file where `-o PATH/` names a folder, and, when
 * it does not exist, a nearest folder that cannot be written in. DiskError, as planOutput and
 * the storage would throw once the torrent is known.
 */
export async function checkOutputEarly(output: string): Promise<void> {
  const target = path.resolve(output);
  const st = await statOrNull(target);
  if (st !== null) {
    if (output.endsWith('/') && !st.isDirectory()) {
      throw new DiskError(`output ${target} exists and is not a directory`);
    }
    return;
  }
  for (let d = path.dirname(target); ; d = path.dirname(d)) {
    const ds = await stat(d).catch(() => null);
    if (ds?.isDirectory()) {
      try {
        await access(d, constants.W_OK);
      } catch (e) {
        throw new DiskError(`cannot create ${target}: ${d}: ${systemErrorText(e)}`, { cause: e });
      }
      return;
    }
    if (d === path.dirname(d)) return;
  }
}

export async function planOutput(
  t: TorrentShape,
  output: string | undefined,
  access: OutputAccess = 'write',
): Promise<OutputPlan> {
  const { root, target, st, lookalike } = await outputRoot(t, output, access);
  const parent = path.dirname(root);
  // No list of files is kept: each path is made (and checked) here, then again when needed.
  const count = t.multiFile ? t.files.length : 1;
  const fileAt = (i: number): { path: string; padding: boolean; link: boolean } => {
    if (!t.multiFile) return { path: root, padding: false, link: false };
    const f = t.files.at(i)!;
    return { path: inside(root, f.path), padding: f.padding === true, link: !!f.symlink };
  };

  if (!t.multiFile) checkPathLength(root);
  const dirs = new Set<string>();
  /** The folder of each file (index in `folders`; padding: -1), so paths are joined once here. */
  const folderOf = new Int32Array(count).fill(-1);
  const folderIndex = new Map<string, number>();
  const folders: string[] = [];
  if (t.multiFile) {
    dirs.add(root);
    for (let i = 0; i < count; i++) {
      const f = fileAt(i);
      if (f.padding) continue;
      checkPathLength(f.path);
      const dir = path.dirname(f.path);
      let k = folderIndex.get(dir);
      if (k === undefined) {
        folderIndex.set(dir, (k = folders.length));
        folders.push(dir);
        for (let d = dir; d !== root && d.startsWith(root + path.sep); d = path.dirname(d)) {
          dirs.add(d);
        }
      }
      folderOf[i] = k;
    }
  }
  const ordered = [...dirs].sort((a, b) => a.length - b.length);

  // Components the torrent named must not already exist as symlinks (or as the wrong kind).
  // (An existing folder the user named, even through a symlink, is the user's choice.)
  const derived = !st?.isDirectory()
    ? ordered
    : root === target
      ? ordered.filter((d) => d !== root)
      : t.multiFile
        ? [root, ...ordered.filter((d) => d !== root)]
        : ordered; // a single file's root is the file itself: checked with the files below
  // Nothing can be inside a folder that is not there: no need to look (a fresh download of many
  // files would otherwise lstat each of them in vain).
  const absent = new Set<string>();
  for (const d of derived) {
    if (absent.has(path.dirname(d)) || !(await refuseLink(d, true, access, d !== root))) {
      absent.add(d);
    }
  }
  if (!t.multiFile) {
    if (root !== target || st?.isDirectory()) await refuseLink(root, false, access);
  } else {
    // Only files whose folder is there are looked at (a fresh download: none), folder by folder:
    // each is listed once, the kind of each entry coming with its name, where an `lstat` per
    // file cost a torrent of 100,000 files already on disk seconds.
    const order = byFolder(folderOf, folders.length);
    let at = 0;
    for (let k = 0; k < folders.length; k++) {
      const end = at + order.count[k]!;
      if (absent.has(folders[k]!)) {
        at = end;
        continue;
      }
      const want = new Set<string>();
      for (let j = at; j < end; j++) want.add(path.basename(fileAt(order.files[j]!).path));
      const kinds = await listKinds(folders[k]!, want, inline());
      for (; at < end; at++) {
        const f = fileAt(order.files[at]!);
        const kind = kinds.get(path.basename(f.path));
        if (kind === undefined || kind === 'file') continue;
        // A link entry (BEP 47 `l`, no data) is a symbolic link once a run completed: never
        // written through, it is made (and its target checked) by storage/attributes.ts.
        if (f.link && kind === 'link') continue;
        // What the listing could not tell, and each refusal with its message, by `lstat`.
        await refuseLink(f.path, false, access);
      }
    }
  }
  const plan = new PlannedOutput(root, parent, ordered, t.multiFile, t.files);
  if (lookalike !== undefined) plan.lookalike = lookalike;
  return plan;
}

/**
 * Is the existing folder `dir` this multi-file torrent's top folder from an earlier run? Yes when
 * the resume file beside it names this torrent; or when every file of the torrent that is in it
 * fits (under its final name at its exact size, under its `.part` name no longer than the file;
 * to read, a final name at another size too, when every file is there or one that is not empty
 * is there at its exact size) and either all of them
 * are there, or at least one is there under its `.part` name (tdl creates
 * a working file when it first writes to it, so an interrupted run leaves some missing), or at
 * least one (not empty) is there complete under its final name (a selection that finished, its
 * parts file since deleted); or when a run's lock is beside it and it holds nothing but the
 * torrent's folders (that run stopped between making them and its first checkpoint).
 */
async function isOwnFolder(dir: string, t: TorrentShape, access: OutputAccess): Promise<boolean> {
  if (t.infoHash && (await resumeInfoHash(withSuffix(dir, RESUME_SUFFIX)))?.equals(t.infoHash)) {
    return true;
  }
  // A download of some of its files leaves its parts file (see parts.ts) beside the folder.
  if (t.infoHash && (await partsInfoHash(withSuffix(dir, PARTS_SUFFIX)))?.equals(t.infoHash)) {
    return true;
  }
  // A run stopped (kill -9, a crash) after it made the torrent's folders and before it wrote its
  // first checkpoint or any file: its lock is still beside the folder, which holds nothing but
  // (empty) folders of the torrent. Taken as a place to put a new top folder, the same command
  // would start again one level down and leave those folders and the lock behind.
  if ((await lstatOrNull(withSuffix(dir, LOCK_SUFFIX)))?.isFile() && (await onlyFolders(dir, t))) {
    return true;
  }
  // None of the torrent's top-level names there (a fresh download into an existing folder): no
  // file of the torrent can be, nothing more to look at.
  const top = new Set<string>();
  let stored = 0;
  for (let i = 0; i < t.files.length; i++) {
    const f = t.files.at(i)!;
    if (f.padding) continue;
    stored++;
    const first = f.path[0]!;
    top.add(first);
    if (f.path.length === 1) top.add(path.basename(withSuffix(path.join(dir, first), PART_SUFFIX)));
  }
  if (stored > 0 && (await listNames(dir, top, inline())).size === 0) return false;
  // What is there, from one listing per folder of the torrent that exists (parents first): a
  // fresh download into an existing folder looks up none of its files by name.
  const want = new Map<string, Set<string>>();
  const wanted = (folder: string, name: string): void => {
    let names = want.get(folder);
    if (!names) want.set(folder, (names = new Set()));
    names.add(name);
  };
  const files: {
    p: string;
    f: { length: number; path: readonly string[]; symlink?: readonly string[] };
  }[] = [];
  for (let i = 0; i < t.files.length; i++) {
    const f = t.files.at(i)!;
    if (!f.padding) files.push({ p: path.join(dir, ...f.path), f });
  }
  for (const { p } of files) {
    const folder = path.dirname(p);
    const known = want.has(folder);
    wanted(folder, path.basename(p));
    wanted(folder, path.basename(withSuffix(p, PART_SUFFIX)));
    // The folders on the way, once per folder: its siblings' files named them already.
    if (known) continue;
    for (let d = folder; d !== dir && d.startsWith(dir + path.sep); d = path.dirname(d)) {
      const up = path.dirname(d);
      const name = path.basename(d);
      if (want.get(up)?.has(name)) break;
      wanted(up, name);
    }
  }
  const found = new Map<string, Set<string>>();
  /** To read: something of the torrent's there in another form (size, kind): damaged. */
  let resized = false;
  for (const d of [...want.keys()].sort((a, b) => a.length - b.length)) {
    const there = d === dir || found.get(path.dirname(d))?.has(path.basename(d)) === true;
    // A file (or a link) where the torrent has a folder: not this torrent's folder. To read
    // (verify, seed), a link there is what a folder made into a torrent by a tool that follows
    // links looks like, as for a file below: the folder is this torrent's, and the storage
    // refuses the link with a message that says so.
    const st = there && d !== dir ? await lstatInline(d, inline()) : null;
    if (st && access === 'read' && st.isSymbolicLink()) return true;
    if (st && !st.isDirectory()) {
      if (access === 'write') return false;
      // To read, the folder's files are missing, as for a file of another size: the folder
      // is this torrent's when the rest fits, and verify reports them (a file where the
      // torrent has a folder cannot hold them).
      resized = true;
      found.set(d, new Set());
      continue;
    }
    if (there && d !== dir && !st) return false;
    found.set(d, there ? await listNames(d, want.get(d)!, inline()) : new Set());
  }
  const present = (p: string) => found.get(path.dirname(p))?.has(path.basename(p)) === true;
  let missing = false;
  let parts = false;
  let whole = false;
  /** A file (not empty) there at its exact size. */
  let exact = false;
  for (const { p, f } of files) {
    const fin = present(p) ? await lstatInline(p, inline()) : null;
    if (fin) {
      // A link entry is a symbolic link once a run completed (its target is checked then).
      if (f.symlink && fin.isSymbolicLink()) continue;
      // Data to read put there as a link (a torrent made by a tool that follows links): the
      // folder is this torrent's, and the link is then refused with a message that says so.
      if (access === 'read' && fin.isSymbolicLink()) continue;
      if (!fin.isFile()) {
        if (access === 'write') return false;
        // To read, something else in a file's place counts as that file, damaged (as a file of
        // another size does): verify names it.
        resized = true;
        continue;
      }
      if (fin.size !== f.length) {
        // To read, a file cut short or grown counts when every file is there: the folder is
        // this torrent's, damaged, and verify names that file (to write, it is someone else's).
        if (access === 'write') return false;
        resized = true;
      } else if (f.length > 0) exact = true;
      if (f.length > 0) whole = true;
      continue;
    }
    const partPath = withSuffix(p, PART_SUFFIX);
    const part = present(partPath) ? await lstatInline(partPath, inline()) : null;
    if (!part) missing = true;
    else if (!part.isFile() || part.size > f.length) return false;
    else parts = true;
  }
  // To read, files at other sizes with others missing: this torrent's folder, damaged, when some
  // file is there whole at its size (verify names each file for what it is).
  if (resized) return !missing || exact;
  // Some files complete and the rest not there: a finished selection whose parts file was
  // deleted (or the selection was all the run took).
  return !missing || parts || whole;
}

/**
 * Does `dir` hold nothing but folders of the torrent (its top folder's tree), files of no kind
 * anywhere in them? Stops at the first other entry.
 */
async function onlyFolders(dir: string, t: TorrentShape): Promise<boolean> {
  const folders = new Set<string>();
  for (let i = 0; i < t.files.length; i++) {
    const f = t.files.at(i)!;
    if (f.padding) continue;
    let d = path.join(dir, ...f.path.slice(0, -1));
    while (d !== dir && !folders.has(d)) {
      folders.add(d);
      d = path.dirname(d);
    }
  }
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    try {
      for await (const ent of await opendir(d)) {
        const p = path.join(d, ent.name);
        if (!ent.isDirectory() || !folders.has(p)) return false;
        stack.push(p);
      }
    } catch (e) {
      throw toDiskError(e, `cannot list ${d}`);
    }
  }
  return true;
}

/** The info hash recorded in a resume file's header, or null (absent, not a regular file). */
async function resumeInfoHash(file: string): Promise<Buffer | null> {
  const b = await readHeader(file, 32);
  return b && b.subarray(0, 8).equals(RESUME_MAGIC) ? b.subarray(12, 32) : null;
}

/**
 * The paths a plan looks at are lstat'ed inline while that is fast: a torrent of 100,000 files
 * already on disk (verify, seed, a resumed download) is 100,000 of them. Made at first use, not
 * when this module loads: names.ts and this module import each other, and fs-util.ts (Inline)
 * may not be loaded yet then.
 */
let inlineCalls: Inline | undefined;
const inline = (): Inline => (inlineCalls ??= new Inline());

/**
 * The files of each folder, in index order: `files` holds the indices of folder 0's files, then
 * folder 1's, and so on, `count[k]` of them for folder `k` (`folderOf[i]` -1: none).
 */
function byFolder(
  folderOf: Int32Array,
  folderCount: number,
): { files: Int32Array; count: Int32Array } {
  const count = new Int32Array(folderCount);
  for (const k of folderOf) if (k >= 0) count[k]!++;
  const next = new Int32Array(folderCount);
  for (let k = 1; k < folderCount; k++) next[k] = next[k - 1]! + count[k - 1]!;
  const files = new Int32Array(
    next.length > 0 ? next[folderCount - 1]! + count[folderCount - 1]! : 0,
  );
  for (let i = 0; i < folderOf.length; i++) {
    const k = folderOf[i]!;
    if (k >= 0) files[next[k]!++] = i;
  }
  return { files, count };
}

/** Join checked components under root, and make sure the result is still inside root. */
function inside(root: string, components: readonly string[]): string {
  const p = path.join(root, ...components);
  // Both normalised and absolute: strictly under root exactly when it starts with root and a
  // separator (path.relative, below, costs far more and says the same for these).
  const prefix = root.endsWith(path.sep) ? root : root + path.sep;
  if (path.isAbsolute(root) && p.length > prefix.length && p.startsWith(prefix)) return p;
  const rel = path.relative(root, p);
  // `..hidden` is a name, not a step up: only `..` itself or `../...` leaves.
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    throw new MetainfoError('info.files', `path ${JSON.stringify(components)} leaves the output`);
  }
  return p;
}

/**
 * Refuse a symlink or the wrong kind of entry at `p` (a name from the torrent); false when
 * nothing is there (to read, also when a folder inside the torrent is something else: its files
 * are missing).
 */
async function refuseLink(
  p: string,
  wantDir: boolean,
  access: OutputAccess,
  /** `p` is a folder inside the torrent's top folder. */
  inside = false,
): Promise<boolean> {
  const st = await lstatInline(p, inline());
  if (!st) return false;
  if (st.isSymbolicLink()) {
    throw symlinkRefused(p, access, wantDir);
  }
  if (wantDir && !st.isDirectory()) {
    // To read, the files under a folder inside the torrent that is a file are missing: verify
    // reports them (and the rest).
    if (access === 'read' && inside) return false;
    throw new DiskError(`${p} exists and is not a directory`);
  }
  // To read, a folder in a file's place is reported by the storage (verify: `missing`, `notAFile`).
  if (!wantDir && st.isDirectory() && access === 'write') {
    throw new DiskError(`${p} exists and is a directory`);
  }
  return true;
}

async function statOrNull(p: string) {
  try {
    return await stat(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ENOTDIR') {
      // `-o notes.txt/out`: name the file in the way, as a shell's mkdir -p would.
      const file = await fileOnTheWay(p);
      if (file !== null) {
        throw new DiskError(`output ${p}: ${file} is a file, not a folder`, { cause: e });
      }
    }
    throw new DiskError(`cannot use ${p}: ${systemErrorText(e)}`, { cause: e });
  }
}

/** The first component on the way to `p` that exists and is not a folder; null if none. */
async function fileOnTheWay(p: string): Promise<string | null> {
  const parents: string[] = [];
  for (let d = path.dirname(p); d !== path.dirname(d); d = path.dirname(d)) parents.unshift(d);
  for (const d of parents) {
    const st = await stat(d).catch(() => null);
    if (st === null) return null;
    if (!st.isDirectory()) return d;
  }
  return null;
}
