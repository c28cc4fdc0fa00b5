/**
 * BEP 47 file attributes applied once a download is complete (called by the finalize step):
 *
 * - `x`: the file is made executable (an `x` bit for each `r` bit it has, like `chmod +x`
 *   under the usual umask). Opened with O_NOFOLLOW, so a symlink put there is never followed.
 * - `l`: a relative symbolic link is created at the file's path, pointing at its target inside
 *   the torrent's top folder. The parser has already refused targets that leave it; this is
 *   checked again here, and no folder on the way to the link may be a symlink. A zero-length
 *   regular file already at the link's path (a placeholder) is replaced; anything else there
 *   that is not the same link (one that resolves to the same entry inside the folder counts as
 *   the same) is an error. Nothing is ever written through a link.
 * - `h` (hidden) and `p` (padding) need nothing here: padding files are never created.
 */
import { mkdir, open, readlink, realpath, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { logger } from '../log.js';
import { DiskError, MetainfoError, systemErrorText } from '../errors.js';
import type { FileList } from '../metainfo/torrent.js';
import { lstatOrNull, OPEN_READ } from './fs-util.js';

const log = logger('tdl:storage');

export interface AttributeFile {
  path: readonly string[];
  padding?: boolean;
  executable?: boolean;
  symlink?: readonly string[];
}

export interface AttributeMeta {
  multiFile: boolean;
  /** An array, or fileList(meta), which makes each entry when asked and keeps none. */
  files: FileList<AttributeFile>;
}

/** Join checked components under root; refuse anything that would leave it. */
function inside(root: string, components: readonly string[], field: string): string {
  const p = path.join(root, ...components);
  const rel = path.relative(root, p);
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    throw new MetainfoError(
      field,
      `path ${JSON.stringify(components.join('/'))} leaves the torrent's folder`,
    );
  }
  return p;
}

function diskError(what: string, p: string, e: unknown): DiskError {
  return new DiskError(`cannot ${what} ${p}: ${systemErrorText(e)}`, {
    cause: e,
  });
}

async function makeExecutable(p: string): Promise<void> {
  let h;
  try {
    // Never waiting on a FIFO put there (see OPEN_READ): the fstat below refuses it.
    h = await open(p, OPEN_READ);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new DiskError(`refusing to change ${p}: it is a symbolic link`);
    }
    throw diskError('open', p, e);
  }
  try {
    const st = await h.stat();
    if (!st.isFile()) throw new DiskError(`cannot make ${p} executable: not a regular file`);
    const mode = st.mode & 0o7777;
    const want = mode | ((mode & 0o444) >> 2);
    if (want !== mode) await h.chmod(want);
  } catch (e) {
    if (e instanceof DiskError) throw e;
    throw diskError('chmod', p, e);
  } finally {
    await h.close();
  }
}

/** Makes sure every folder from root down to `dir` is a real folder (creating missing ones). */
async function realFolders(root: string, dir: string): Promise<void> {
  const rel = path.relative(root, dir);
  let cur = root;
  for (const c of rel === '' ? [] : rel.split(path.sep)) {
    cur = path.join(cur, c);
    const st = await lstatOrNull(cur);
    if (st === null) {
      try {
        await mkdir(cur);
      } catch (e) {
        throw diskError('create', cur, e);
      }
    } else if (st.isSymbolicLink()) {
      throw new DiskError(`refusing to create a link through the symbolic link ${cur}`);
    } else if (!st.isDirectory()) {
      throw new DiskError(`${cur} exists and is not a directory`);
    }
  }
}

/**
 * Whether the link at `linkPath` already leads where the torrent's does, in other words (`./a`, an
 * absolute path, a chain of links: what `tdl create` found and wrote as the target it
 * resolved to): both resolve to one entry inside the torrent's folder.
 */
async function reachesSame(root: string, linkPath: string, target: string): Promise<boolean> {
  try {
    const [realRoot, there, want] = await Promise.all([
      realpath(root),
      realpath(linkPath),
      realpath(target),
    ]);
    return there === want && there.startsWith(realRoot + path.sep);
  } catch {
    return false; // broken, or the target is missing: not the torrent's link
  }
}

/**
 * What is at a torrent link's path: the link (`in-place`), nothing, a zero-length regular file
 * (`placeholder`: a complete run replaces it with the link), or something else, which a complete
 * run refuses to replace (`other`; `to`: the text of a link found there).
 */
export type LinkState =
  | { state: 'in-place' }
  | { state: 'missing' }
  | { state: 'placeholder' }
  | { state: 'other'; to?: string };

/**
 * Whether the torrent's link `linkPath` -> `target` (both inside `root`) is in place: a link
 * whose text is the relative path, or one that reaches the same entry (reachesSame).
 */
export async function linkState(
  root: string,
  linkPath: string,
  target: string,
): Promise<LinkState> {
  const st = await lstatOrNull(linkPath);
  if (st === null) return { state: 'missing' };
  if (st.isFile() && st.size === 0) return { state: 'placeholder' };
  if (!st.isSymbolicLink()) return { state: 'other' };
  const to = await readlink(linkPath).catch((e: unknown) => {
    throw diskError('read', linkPath, e);
  });
  if (to === linkText(path.dirname(linkPath), target)) return { state: 'in-place' };
  return (await reachesSame(root, linkPath, target))
    ? { state: 'in-place' }
    : { state: 'other', to };
}

/**
 * The text of a relative link in folder `dir` to `target`: `.` for the folder itself (a link to
 * the folder that holds it), for which path.relative gives an empty string, which no link can
 * hold.
 */
function linkText(dir: string, target: string): string {
  return path.relative(dir, target) || '.';
}

async function makeLink(root: string, linkPath: string, target: string): Promise<void> {
  const dir = path.dirname(linkPath);
  await realFolders(root, dir);
  const rel = linkText(dir, target);
  if (path.resolve(dir, rel) !== target) {
    throw new MetainfoError('info.files', `symbolic link ${linkPath} would not reach ${target}`);
  }
  const found = await linkState(root, linkPath, target);
  if (found.state === 'in-place') return;
  if (found.state === 'other') {
    throw new DiskError(
      found.to === undefined
        ? `${linkPath} exists: cannot put the torrent's symbolic link there`
        : `${linkPath} is already a symbolic link, to ${found.to}`,
    );
  }
  if (found.state === 'placeholder') {
    await unlink(linkPath).catch((e: unknown) => {
      throw diskError('replace', linkPath, e);
    });
  }
  try {
    await symlink(rel, linkPath);
  } catch (e) {
    throw diskError('create the symbolic link', linkPath, e);
  }
  log('link %s -> %s', linkPath, rel);
}

/**
 * Where each link of the torrent leads (by its index), as components from the torrent's top
 * folder. BEP 47 gives a target from the top folder, but libtorrent 2.0 writes it from the
 * link's own folder (`sub/l` to `b.bin` beside it as `b.bin`), and its downloader takes a target
 * that names nothing of the torrent from the top as one from the link's folder, when that names
 * a file, a folder or a link of the torrent. So does tdl: such a link is made as libtorrent
 * makes it, and the folder that torrent was made from verifies and seeds. A target that names
 * nothing either way is kept as given (the link leads nowhere). One pass over the list, and a
 * set of its paths only when it holds a link.
 */
export function linkTargets(files: FileList<AttributeFile>): Map<number, readonly string[]> {
  const links = new Map<number, readonly string[]>();
  let names: Set<string> | null = null;
  for (let i = 0; i < files.length; i++) {
    const f = files.at(i)!;
    if (f.padding) continue;
    if (f.symlink) links.set(i, f.symlink);
  }
  for (const [i, target] of links) {
    names ??= torrentNames(files);
    if (names.has(target.join('/'))) continue;
    const link = files.at(i)!.path;
    if (link.length < 2) continue;
    const beside = [...link.slice(0, -1), ...target];
    const key = beside.join('/');
    // Never the link itself (`sub/l` to `l`): kept as given, as a link that leads nowhere.
    if (names.has(key) && key !== link.join('/')) links.set(i, beside);
  }
  return links;
}

/** Every path of the torrent (files, links) and every folder on the way to one, `/`-joined. */
function torrentNames(files: FileList<AttributeFile>): Set<string> {
  const names = new Set<string>();
  for (let i = 0; i < files.length; i++) {
    const f = files.at(i)!;
    if (f.padding) continue;
    let key = '';
    for (const c of f.path) {
      key = key === '' ? c : `${key}/${c}`;
      names.add(key);
    }
  }
  return names;
}

/**
 * The torrent's links (BEP 47 `l`) and whether each is in place under `plan.root`, for
 * `tdl verify`: what applyFileAttributes would find (a link elsewhere there makes it fail).
 */
export async function checkLinks(
  plan: { root: string },
  meta: AttributeMeta,
): Promise<{ index: number; path: string; target: string; found: LinkState }[]> {
  if (!meta.multiFile) return [];
  const root = path.resolve(plan.root);
  const out = [];
  for (const [i, to] of linkTargets(meta.files)) {
    const f = meta.files.at(i)!;
    const linkPath = inside(root, f.path, `info.files[${i}].path`);
    const target = inside(root, to, `info.files[${i}].symlink path`);
    out.push({ index: i, path: linkPath, target, found: await linkState(root, linkPath, target) });
  }
  return out;
}

/**
 * Applies the `x` and `l` attributes of a completed torrent whose top folder (multi-file) or
 * file (single-file) is `plan.root`. Returns how many files were made executable and how many
 * links were created or found in place. Throws MetainfoError (exit 3) for a link that would
 * leave the folder, DiskError for anything the file system refuses.
 */
export async function applyFileAttributes(
  plan: { root: string },
  meta: AttributeMeta,
  /** A partial selection: `x` only on the files it holds, and no link. */
  selected?: (index: number) => boolean,
): Promise<{ executables: number; symlinks: number }> {
  const root = path.resolve(plan.root);
  let executables = 0;
  let symlinks = 0;
  // One pass over the list (a 100,000-file torrent makes each entry as it is asked for); the
  // links are made after every regular file is in its final state.
  let hasLinks = false;
  for (let i = 0; i < meta.files.length; i++) {
    const f = meta.files.at(i)!;
    if (f.padding || (selected && !selected(i))) continue;
    if (f.symlink) hasLinks = true;
    else if (f.executable) {
      await makeExecutable(meta.multiFile ? inside(root, f.path, `info.files[${i}].path`) : root);
      executables++;
    }
  }
  if (!hasLinks || selected) return { executables, symlinks };
  if (!meta.multiFile) {
    throw new MetainfoError('info.attr', 'a single-file torrent cannot be a symbolic link');
  }
  for (const [i, to] of linkTargets(meta.files)) {
    const f = meta.files.at(i)!;
    const linkPath = inside(root, f.path, `info.files[${i}].path`);
    const target = inside(root, to, `info.files[${i}].symlink path`);
    if (target === linkPath) {
      throw new MetainfoError(`info.files[${i}].symlink path`, 'a link cannot point at itself');
    }
    await makeLink(root, linkPath, target);
    symlinks++;
  }
  return { executables, symlinks };
}
