/**
 * Where a torrent's data goes on disk, following cp: `-o PATH` naming an existing directory puts
 * the torrent's file or top folder inside it; any other PATH becomes the file (single-file
 * torrent) or the top folder (multi-file torrent). One exception keeps a run repeatable: when
 * PATH is an existing folder that is this multi-file torrent's own top folder from an earlier run
 * (PATH/<name> does not exist, and PATH.tdl-resume belongs to this torrent, or the torrent's files
 * in PATH all fit it and are all there or include a `.part` working file), PATH stays the top folder, so
 * the same command resumes or re-checks instead of starting again one level down.
 *
 * Every file path is built from components that
 * the metainfo parser has already checked one by one, and is checked again here to stay inside
 * the output root; a symlink already present where a torrent-derived component would go is
 * refused, because writing through it could land outside the output.
 */
import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { DiskError, MetainfoError } from '../errors.js';
import type { FileList } from '../metainfo/torrent.js';
import { listNames, lstatOrNull } from './fs-util.js';
import { PART_SUFFIX, RESUME_SUFFIX, withSuffix } from './names.js';
import { PARTS_SUFFIX, partsInfoHash } from './parts.js';
import { RESUME_MAGIC } from './resume.js';

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
  files: OutputFile[];
  /** Folders to create, parents first. */
  dirs: string[];
}

interface TorrentShape {
  name: string;
  multiFile: boolean;
  /** An array, or a FileList that makes each entry when asked (see metainfo/torrent.ts). */
  files: FileList<{
    path: readonly string[];
    length: number;
    offset: number;
    padding?: boolean;
  }>;
  /** Recognises this torrent's resume file (see above). */
  infoHash?: Buffer;
}

export async function planOutput(t: TorrentShape, output: string | undefined): Promise<OutputPlan> {
  const target = path.resolve(output ?? '.');
  const st = await statOrNull(target);
  let root: string;
  if (st?.isDirectory()) {
    const nested = path.join(target, t.name);
    root =
      t.multiFile && !(await lstatOrNull(nested)) && (await isOwnFolder(target, t))
        ? target
        : nested;
  } else if (st && t.multiFile) {
    throw new DiskError(`output ${target} exists and is not a directory`);
  } else {
    root = target;
  }
  const parent = path.dirname(root);
  const files: OutputFile[] = t.multiFile
    ? Array.from({ length: t.files.length }, (_, i) => {
        const f = t.files.at(i)!;
        return {
          path: inside(root, f.path),
          length: f.length,
          offset: f.offset,
          ...(f.padding ? { padding: true } : {}),
        };
      })
    : [{ path: root, length: t.files.at(0)!.length, offset: 0 }];

  const dirs = new Set<string>();
  if (t.multiFile) {
    dirs.add(root);
    for (const f of files) {
      if (f.padding) continue;
      for (
        let d = path.dirname(f.path);
        d !== root && d.startsWith(root + path.sep);
        d = path.dirname(d)
      ) {
        dirs.add(d);
      }
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
    if (absent.has(path.dirname(d)) || !(await refuseLink(d, true))) absent.add(d);
  }
  for (const f of files) {
    if (f.padding || absent.has(path.dirname(f.path))) continue;
    if (f.path !== target || st?.isDirectory()) await refuseLink(f.path, false);
  }
  return { root, parent, files, dirs: ordered };
}

/**
 * Is the existing folder `dir` this multi-file torrent's top folder from an earlier run? Yes when
 * the resume file beside it names this torrent; or when every file of the torrent that is in it
 * fits (under its final name at its exact size, under its `.part` name no longer than the file)
 * and either all of them are there or at least one is there under its `.part` name (tdl creates
 * a working file when it first writes to it, so an interrupted run leaves some missing).
 */
async function isOwnFolder(dir: string, t: TorrentShape): Promise<boolean> {
  if (t.infoHash && (await resumeInfoHash(withSuffix(dir, RESUME_SUFFIX)))?.equals(t.infoHash)) {
    return true;
  }
  // A download of some of its files leaves its parts file (see parts.ts) beside the folder.
  if (t.infoHash && (await partsInfoHash(withSuffix(dir, PARTS_SUFFIX)))?.equals(t.infoHash)) {
    return true;
  }
  // What is there, from one listing per folder of the torrent that exists (parents first): a
  // fresh download into an existing folder looks up none of its files by name.
  const want = new Map<string, Set<string>>();
  const wanted = (folder: string, name: string): void => {
    let names = want.get(folder);
    if (!names) want.set(folder, (names = new Set()));
    names.add(name);
  };
  const files: { p: string; f: { length: number; path: readonly string[] } }[] = [];
  for (let i = 0; i < t.files.length; i++) {
    const f = t.files.at(i)!;
    if (!f.padding) files.push({ p: path.join(dir, ...f.path), f });
  }
  for (const { p } of files) {
    wanted(path.dirname(p), path.basename(p));
    wanted(path.dirname(p), path.basename(withSuffix(p, PART_SUFFIX)));
    for (let d = path.dirname(p); d !== dir && d.startsWith(dir + path.sep); d = path.dirname(d)) {
      wanted(path.dirname(d), path.basename(d));
    }
  }
  const found = new Map<string, Set<string>>();
  for (const d of [...want.keys()].sort((a, b) => a.length - b.length)) {
    const there = d === dir || found.get(path.dirname(d))?.has(path.basename(d)) === true;
    found.set(d, there ? await listNames(d, want.get(d)!) : new Set());
  }
  const present = (p: string) => found.get(path.dirname(p))?.has(path.basename(p)) === true;
  let missing = false;
  let parts = false;
  for (const { p, f } of files) {
    const fin = present(p) ? await lstatOrNull(p) : null;
    if (fin) {
      if (!fin.isFile() || fin.size !== f.length) return false;
      continue;
    }
    const partPath = withSuffix(p, PART_SUFFIX);
    const part = present(partPath) ? await lstatOrNull(partPath) : null;
    if (!part) missing = true;
    else if (!part.isFile() || part.size > f.length) return false;
    else parts = true;
  }
  return !missing || parts;
}

/** The info hash recorded in a resume file's header, or null. */
async function resumeInfoHash(file: string): Promise<Buffer | null> {
  try {
    const h = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const b = Buffer.alloc(32);
      const { bytesRead } = await h.read(b, 0, 32, 0);
      if (bytesRead < 32 || !b.subarray(0, 8).equals(RESUME_MAGIC)) return null;
      return b.subarray(12, 32);
    } finally {
      await h.close();
    }
  } catch {
    return null;
  }
}

/** Join checked components under root, and make sure the result is still inside root. */
function inside(root: string, components: readonly string[]): string {
  const p = path.join(root, ...components);
  const rel = path.relative(root, p);
  // `..hidden` is a name, not a step up: only `..` itself or `../...` leaves.
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    throw new MetainfoError('info.files', `path ${JSON.stringify(components)} leaves the output`);
  }
  return p;
}

/** Refuse a symlink or the wrong kind of entry at `p`; false when nothing is there. */
async function refuseLink(p: string, wantDir: boolean): Promise<boolean> {
  const st = await lstatOrNull(p);
  if (!st) return false;
  if (st.isSymbolicLink()) {
    throw new MetainfoError('info.files', `refusing to write through the symlink ${p}`);
  }
  if (wantDir && !st.isDirectory()) throw new DiskError(`${p} exists and is not a directory`);
  if (!wantDir && st.isDirectory()) throw new DiskError(`${p} exists and is a directory`);
  return true;
}

async function statOrNull(p: string) {
  try {
    return await stat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new DiskError(`cannot read ${p}: ${(e as Error).message}`, { cause: e });
  }
}
