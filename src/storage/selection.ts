/**
 * Which of a torrent's files to download (`--select`, `--include`, `--exclude`), and the pieces
 * that follows. Pure.
 *
 * Files are numbered from 1 as `tdl info` lists them, padding files left out (they are never on
 * disk). `--select 1,3-5` takes files by number; `--include GLOB` takes the files whose path
 * inside the torrent matches; with neither, every file is taken. `--exclude GLOB` then removes
 * the files it matches. A glob without `/` matches a file's last component, one with `/` its whole
 * path inside the torrent (for a single-file torrent: its name); `*` and `?` stay within a
 * component, `**` crosses `/`. A magnet link's `so` (BEP 53, indexes from 0) selects when none of
 * them is given.
 */
import { UsageError } from '../errors.js';
import { Bitfield } from '../wire/bitfield.js';
import type { FileList } from '../metainfo/torrent.js';
import type { Layout } from './layout.js';

export interface SelectOptions {
  /** Like `1,3-5`: file numbers as `tdl info` prints them. */
  select?: string;
  include?: readonly string[];
  exclude?: readonly string[];
}

export interface SelectableFile {
  path: readonly string[];
  padding?: boolean;
  /** BEP 47 `l`: a symbolic link, no data, made only when the whole torrent is there. */
  symlink?: readonly string[];
}

/**
 * Longest `--select` list (all of them joined) and glob accepted, in characters. A list of
 * scattered numbers among the 100,000 files a torrent may have takes up to about 700,000.
 */
export const MAX_SELECT_CHARS = 1_000_000;
export const MAX_GLOB_CHARS = 4096;

/** Is any selection option given? */
export function hasSelection(o: SelectOptions): boolean {
  return o.select !== undefined || (o.include?.length ?? 0) > 0 || (o.exclude?.length ?? 0) > 0;
}

/**
 * Checks what the selection options can be checked for without the torrent's file list (their
 * syntax: a list like 1,3-5, globs that are not empty): a magnet link's download refuses a bad
 * option before it waits for the metadata. UsageError as resolveSelection would throw.
 */
export function checkSelectionSyntax(o: SelectOptions): void {
  if (o.select !== undefined) parseRanges(o.select, Infinity);
  for (const g of [...(o.include ?? []), ...(o.exclude ?? [])]) compileGlob(g);
}

/**
 * The selected files, one flag per torrent file (padding files are never selected), or null when
 * no option is given (every file). UsageError on a malformed list, a number beyond the files, or
 * a selection that leaves no file. `warn` is told of each --include or --exclude that matches no
 * file of the torrent (`--exclude sub`, meant for a folder, leaves every file in, silently else).
 */
export function resolveSelection(
  files: FileList<SelectableFile>,
  name: string,
  multiFile: boolean,
  o: SelectOptions,
  warn?: (message: string) => void,
): Uint8Array | null {
  if (!hasSelection(o)) return null;
  // Real (non-padding) files, in torrent order: number k is real[k - 1].
  const real: number[] = [];
  for (let i = 0; i < files.length; i++) if (!files.at(i)!.padding) real.push(i);
  const sel = new Uint8Array(files.length);
  const include = (o.include ?? []).map(compileGlob);
  const exclude = (o.exclude ?? []).map(compileGlob);
  if (o.select === undefined && include.length === 0) {
    for (const i of real) sel[i] = 1;
  }
  if (o.select !== undefined) {
    for (const [a, b] of parseRanges(o.select, real.length)) {
      for (let k = a; k <= b; k++) sel[real[k - 1]!] = 1;
    }
  }
  // Each pattern is tried on every file once, whatever the others found: one that matches none
  // is told to `warn`.
  const included = new Uint8Array(include.length);
  const excluded = new Uint8Array(exclude.length);
  const folders = new Set<string>();
  for (const i of real) {
    const parts = multiFile ? files.at(i)!.path : null;
    const p = parts ? parts.join('/') : name;
    let into = false;
    include.forEach((g, k) => {
      if (!g(p)) return;
      included[k] = 1;
      into = true;
    });
    let out = false;
    exclude.forEach((g, k) => {
      if (!g(p)) return;
      excluded[k] = 1;
      out = true;
    });
    if (into) sel[i] = 1;
    if (out) sel[i] = 0;
    if (warn && parts) {
      for (let k = 0; k < parts.length - 1 && folders.size < 10_000; k++) folders.add(parts[k]!);
    }
  }
  if (warn) {
    const tell = (option: string, g: string) => {
      // A folder's name alone, meant as the folder (`sub`, `sub/`), or a path written from the
      // root (`/a.txt`): say how to write it.
      const folder = !g.includes('/') && folders.has(g);
      const hint = folder
        ? ` (a pattern without / matches file names: for the folder, ${JSON.stringify(`${g}/**`)})`
        : g.endsWith('/') && g.length > 1
          ? ` (patterns match files: for the files of a folder, ${JSON.stringify(`${g}**`)})`
          : g.startsWith('/') && g.length > 1
            ? ` (patterns match paths inside the torrent, with no leading /: ${JSON.stringify(g.replace(/^\/+/, ''))})`
            : '';
      warn(`${option} ${JSON.stringify(g)} matches no file of the torrent${hint}`);
    };
    (o.include ?? []).forEach((g, k) => {
      if (!included[k]) tell('--include', g);
    });
    (o.exclude ?? []).forEach((g, k) => {
      if (!excluded[k]) tell('--exclude', g);
    });
  }
  if (!sel.includes(1)) {
    // `tdl info` shows paths under the torrent's name; patterns match them without it.
    const named = multiFile ? (o.include ?? []).find((g) => g.startsWith(`${name}/`)) : undefined;
    const hint =
      named === undefined
        ? ''
        : ` (patterns match paths inside the torrent, without its name: ${JSON.stringify(named.slice(name.length + 1))}, not ${JSON.stringify(named)})`;
    throw new UsageError(`the selection (--select, --include, --exclude) leaves no file${hint}`);
  }
  // Links are made only once the whole torrent is there: a selection of links alone is none.
  let data = false;
  for (let i = 0; i < sel.length && !data; i++) if (sel[i] && !files.at(i)!.symlink) data = true;
  if (!data) {
    throw new UsageError(
      'the selection (--select, --include, --exclude) holds only symbolic links (BEP 47), which are made only with the whole torrent: select a file with data',
    );
  }
  return sel;
}

/**
 * Whether `selected` takes every file but the padding ones (which are never selected): such a
 * selection is none, and the torrent is complete when it is.
 */
export function selectsEveryFile(
  selected: Uint8Array,
  isPadding: (fileIndex: number) => boolean,
): boolean {
  for (let i = 0; i < selected.length; i++) if (!selected[i] && !isPadding(i)) return false;
  return true;
}

/**
 * A magnet link's `so` (BEP 53) as a selection: `indexes` count from 0 over the torrent's whole
 * file list, padding files included (they are entries of that list), but a padding file is never
 * selected. Indexes past the list are returned in `beyond` (for a warning). UsageError when
 * nothing is left to download.
 */
export function selectionFromIndexes(
  files: FileList<SelectableFile>,
  indexes: readonly number[],
): { selected: Uint8Array; beyond: number[] } {
  const selected = new Uint8Array(files.length);
  const beyond: number[] = [];
  for (const i of indexes) {
    if (i >= files.length) beyond.push(i);
    else if (!files.at(i)!.padding) selected[i] = 1;
  }
  if (!selected.includes(1)) {
    throw new UsageError(
      `the magnet link's so= selects no file of the torrent's ${files.length}` +
        ' (it counts from 0; --select, --include or --exclude replace it)',
    );
  }
  return { selected, beyond };
}

/** `1,3-5` → [[1,1],[3,5]]; numbers from 1 to `count`. */
export function parseRanges(spec: string, count: number): [number, number][] {
  if (spec.length > MAX_SELECT_CHARS) {
    throw new UsageError(`--select: longer than ${MAX_SELECT_CHARS} characters`);
  }
  const out: [number, number][] = [];
  for (const part of spec.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) {
      throw new UsageError(
        `--select ${JSON.stringify(spec)}: expected file numbers like 1,3-5 (as tdl info lists them)`,
      );
    }
    const a = Number(m[1]);
    const b = m[2] !== undefined ? Number(m[2]) : a;
    if (a < 1) {
      throw new UsageError(
        `--select: no file ${part.trim()}: files are numbered from 1 (as tdl info lists them)`,
      );
    }
    if (b < a) {
      throw new UsageError(`--select: range ${part.trim()} goes down; write ${b}-${a}`);
    }
    if (b > count) {
      throw new UsageError(
        `--select: file ${(m[2] ?? m[1])!.replace(/^0+(?=\d)/, '')} does not exist (the torrent has ${count} file${count === 1 ? '' : 's'})`,
      );
    }
    out.push([a, b]);
  }
  return out;
}

/** A glob as a predicate on a path inside the torrent (see the module comment). */
export function compileGlob(glob: string): (p: string) => boolean {
  if (glob.length === 0) throw new UsageError('a glob of --include/--exclude is empty');
  if (glob.length > MAX_GLOB_CHARS) {
    throw new UsageError(
      `a glob of --include/--exclude is longer than ${MAX_GLOB_CHARS} characters`,
    );
  }
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      // `**/` matches zero or more folders; `**` elsewhere anything.
      if (glob[i + 2] === '/') {
        re += '(?:.*/)?';
        i += 2;
      } else {
        re += '.*';
        i += 1;
        // Collapse runs of stars: they mean nothing more and would slow the match down.
        while (glob[i + 1] === '*') i++;
      }
    } else if (c === '*') {
      re += '[^/]*';
      while (glob[i + 1] === '*') i++;
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  const rx = new RegExp(`^${re}$`, 's');
  const whole = glob.includes('/');
  return (p) => rx.test(whole ? p : p.slice(p.lastIndexOf('/') + 1));
}

/** Pieces holding at least one byte of a selected file: the pieces to fetch. */
export function wantedPieces(layout: Layout, selected: Uint8Array | null): Bitfield {
  const want = new Bitfield(layout.pieceCount);
  if (!selected) {
    for (let p = 0; p < layout.pieceCount; p++) want.set(p);
    return want;
  }
  for (let fi = 0; fi < layout.fileCount; fi++) {
    if (!selected[fi]) continue;
    const r = layout.piecesOfFile(fi);
    if (!r) continue;
    for (let p = r.first; p <= r.last; p++) want.set(p);
  }
  return want;
}

/** Bytes of the selected files (all files when `selected` is null), padding excluded. */
export function selectedBytes(
  files: FileList<{ length: number; padding?: boolean }>,
  selected: Uint8Array | null,
): number {
  let n = 0;
  for (let i = 0; i < files.length; i++) {
    if (selected && !selected[i]) continue;
    const f = files.at(i)!;
    if (!f.padding) n += f.length;
  }
  return n;
}
