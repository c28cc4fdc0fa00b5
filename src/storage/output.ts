/**
 * Where a torrent's data goes on disk, following cp: `-o PATH` naming an existing directory puts
 * the torrent's file or top folder inside it; any other PATH becomes the file (single-file
 * torrent) or the top folder (multi-file torrent). Every file path is built from components that
 * the metainfo parser has already checked one by one, and is checked again here to stay inside
 * the output root; a symlink already present where a torrent-derived component would go is
 * refused, because writing through it could land outside the output.
 */
import { lstat, stat } from 'node:fs/promises';
import path from 'node:path';
import { DiskError, MetainfoError } from '../errors.js';

export interface OutputFile {
  /** Absolute path of the file on disk. */
  path: string;
  length: number;
  offset: number;
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
  files: readonly { path: readonly string[]; length: number; offset: number }[];
}

export async function planOutput(t: TorrentShape, output: string | undefined): Promise<OutputPlan> {
  const target = path.resolve(output ?? '.');
  const st = await statOrNull(target);
  let root: string;
  if (st?.isDirectory()) {
    root = path.join(target, t.name);
  } else if (st && t.multiFile) {
    throw new DiskError(`output ${target} exists and is not a directory`);
  } else {
    root = target;
  }
  const parent = path.dirname(root);
  const files: OutputFile[] = t.multiFile
    ? t.files.map((f) => ({ path: inside(root, f.path), length: f.length, offset: f.offset }))
    : [{ path: root, length: t.files[0]!.length, offset: 0 }];

  const dirs = new Set<string>();
  if (t.multiFile) {
    dirs.add(root);
    for (const f of files) {
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
  const derived = st?.isDirectory() ? [root, ...ordered.filter((d) => d !== root)] : ordered;
  for (const d of derived) await refuseLink(d, true);
  for (const f of files)
    if (f.path !== target || st?.isDirectory()) await refuseLink(f.path, false);
  return { root, parent, files, dirs: ordered };
}

/** Join checked components under root, and make sure the result is still inside root. */
function inside(root: string, components: readonly string[]): string {
  const p = path.join(root, ...components);
  const rel = path.relative(root, p);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new MetainfoError('info.files', `path ${JSON.stringify(components)} leaves the output`);
  }
  return p;
}

async function refuseLink(p: string, wantDir: boolean): Promise<void> {
  const st = await lstatOrNull(p);
  if (!st) return;
  if (st.isSymbolicLink()) {
    throw new MetainfoError('info.files', `refusing to write through the symlink ${p}`);
  }
  if (wantDir && !st.isDirectory()) throw new DiskError(`${p} exists and is not a directory`);
  if (!wantDir && st.isDirectory()) throw new DiskError(`${p} exists and is a directory`);
}

async function statOrNull(p: string) {
  try {
    return await stat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new DiskError(`cannot read ${p}: ${(e as Error).message}`, { cause: e });
  }
}

async function lstatOrNull(p: string) {
  try {
    return await lstat(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw new DiskError(`cannot read ${p}: ${(e as Error).message}`, { cause: e });
  }
}
