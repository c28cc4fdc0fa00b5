/**
 * What is on disk when the output is opened (DiskStorage.open): the folders are created in write
 * mode (`mkdir` once each; a folder just created holds nothing to look for), each existing folder
 * is listed once, and only names that exist are `lstat`ed. No name is probed by a failing `open`.
 *
 * Only files that storage keeps (selected, not padding) are looked for, and only their folders
 * are created: nothing is made for a file not selected. A file found under both names is
 * "shadowed": its working name is the one used. A link in a file's place is refused; in write
 * mode anything but a regular file is too, while in read mode (verify, seed) it is reported as
 * not a file and taken as missing.
 */
import type { BigIntStats } from 'node:fs';
import path from 'node:path';
import { DiskError } from '../errors.js';
import { listNames, symlinkRefused, type Inline } from './fs-util.js';

/** What the scan needs of the storage. */
export interface ScanHost {
  readonly fileCount: number;
  /** Write mode (else read: nothing is created). */
  readonly write: boolean;
  /** Write mode: create the folders now (false for `tdl seed`: nothing is made at open). */
  readonly prepare: boolean;
  /** The folder that holds the torrent's root, and the torrent's folders, parents first. */
  readonly parent: string;
  readonly dirs: readonly string[];
  /** A file storage keeps on disk (selected, not padding): only these are looked for. */
  stored(i: number): boolean;
  finalPath(i: number): string;
  partPath(i: number): string;
  /**
   * Create a folder whose parent exists; true when it was made (the host keeps a list, to remove
   * them again should the run write nothing), false when one was there.
   */
  mkdir(dir: string): Promise<boolean>;
  /** Create a folder and its parents. */
  mkdirs(dir: string): Promise<void>;
  lstat(p: string): Promise<BigIntStats | null>;
  /** Synchronous calls while they are fast (see Inline in fs-util.ts). */
  readonly inline?: Inline;
  /**
   * Told of each file found, in index order within each folder. Nothing keeps the stats: a
   * list of 100,000 of them held until the scan ends is garbage collected again and again.
   */
  found(f: Found): void;
}

/** File `i` as found: under its working name (`part`) or its final name, with its stat. */
export interface Found {
  index: number;
  atPart: boolean;
  /** Both names are there: the working one is used, the final one replaced at the end. */
  shadowed: boolean;
  stat: BigIntStats;
}

export interface ScanResult {
  /** Read mode: files whose path holds something that is not a regular file. */
  notAFile: number[];
}

export async function scanOutput(host: ScanHost): Promise<ScanResult> {
  const result: ScanResult = { notAFile: [] };
  // Folders that are not there (just created, or missing in read mode): nothing to look for.
  const empty = new Set<string>();
  // Only folders that hold a stored file: nothing is created for files not selected.
  const needed = new Set<string>();
  // The files of each folder (one path made per file).
  const byDir = new Map<string, number[]>();
  for (let i = 0; i < host.fileCount; i++) {
    if (!host.stored(i)) continue;
    const dir = path.dirname(host.finalPath(i));
    let list = byDir.get(dir);
    if (!list) byDir.set(dir, (list = []));
    list.push(i);
    for (let d = dir; !needed.has(d) && d !== host.parent;) {
      needed.add(d);
      const up = path.dirname(d);
      if (up === d) break;
      d = up;
    }
  }
  const dirs = host.dirs.filter((d) => needed.has(d));
  if (host.write && host.prepare) {
    await host.mkdirs(host.parent);
    for (const d of dirs) {
      if (await host.mkdir(d)) empty.add(d);
    }
  }
  const listable = new Set(dirs);
  for (const [d, list] of byDir) {
    if (empty.has(d)) continue;
    let present: (name: string) => Promise<boolean>;
    if (listable.has(d)) {
      const want = new Set<string>();
      for (const i of list) {
        want.add(path.basename(host.finalPath(i)));
        want.add(path.basename(host.partPath(i)));
      }
      const names = await listNames(d, want, host.inline);
      present = (name) => Promise.resolve(names.has(name));
    } else {
      present = async (name) => (await host.lstat(path.join(d, name))) !== null;
    }
    for (const i of list) {
      const hasPart = await present(path.basename(host.partPath(i)));
      const hasFinal = await present(path.basename(host.finalPath(i)));
      if (!hasPart && !hasFinal) continue;
      const current = hasPart ? host.partPath(i) : host.finalPath(i);
      const st = await host.lstat(current);
      // Gone between the listing and now: treat as never there.
      if (!st) continue;
      if (st.isSymbolicLink()) {
        throw symlinkRefused(current, host.write ? 'write' : 'read', false);
      }
      if (!st.isFile()) {
        if (host.write) throw new DiskError(`${current} is not a regular file`);
        // To read (verify, seed): the file is not there, and the report says what is.
        result.notAFile.push(i);
        continue;
      }
      host.found({ index: i, atPart: hasPart, shadowed: hasPart && hasFinal, stat: st });
    }
  }
  return result;
}
