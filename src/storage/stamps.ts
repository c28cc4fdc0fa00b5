/**
 * What identifies each output file's contents between runs (its stamp: size, modification time
 * and inode, kept in the resume file) and the check that a file is still the one tdl writes:
 * same inode, under the name tdl expects, no shorter than tdl made it. Someone else removing,
 * replacing or truncating a file while tdl uses it is an OutputChangedError.
 *
 * A stamp is fresh when it was taken after the file's last write; a file leaving the pool is
 * stamped on its handle (one fstat), otherwise `look` takes one lstat by name. Stamps are taken
 * only of files tdl has written since their last stamp: a file tdl has not written keeps the
 * stamp it had, so that a change made by someone else shows as a mismatch on the next start.
 */
import type { BigIntStats } from 'node:fs';
import { logger } from '../log.js';
import { DiskError } from '../errors.js';
import { eachLimited, FS_PARALLEL } from './fs-util.js';
import { StampTable } from './resume.js';

const log = logger('tdl:storage');

/**
 * The time a stamp keeps: the later of the file's modification and status-change times. An
 * edit whose modification time was set back (`touch -r`, a restore keeping times) still moves
 * the change time, which no one can set; tdl's own writes move both alike.
 */
export function stampTimeNs(st: BigIntStats): bigint {
  return st.ctimeNs > st.mtimeNs ? st.ctimeNs : st.mtimeNs;
}

/** What identifies a file's contents between runs: size, modification time and inode. */
export interface FileStamp {
  size: number;
  mtimeNs: bigint;
  ino: bigint;
}

/** An output file was removed, replaced or truncated by someone else while tdl used it. */
export class OutputChangedError extends DiskError {}

/** What the stamps need of the storage. */
export interface StampHost {
  readonly ident: Identities;
  /** File `i` is a real file on disk (not padding, found or created by tdl). */
  onDisk(i: number): boolean;
  /** The smallest size file `i` must have: its size when found, grown by tdl's writes. */
  knownSize(i: number): number;
  /** Writes completed to file `i` so far. */
  gen(i: number): number;
  isOpen(i: number): boolean;
  withFile<T>(i: number, fn: (fd: number) => Promise<T>): Promise<T>;
  statHandle(fd: number): Promise<BigIntStats>;
  lstat(p: string): Promise<BigIntStats | null>;
  currentPath(i: number): string | null;
}

export class Stamps {
  /** Each file's last stamp, as the resume file stores them. */
  readonly table: StampTable;
  /** The stamp was taken after the file's last write. */
  private readonly fresh: Uint8Array;

  constructor(
    readonly fileCount: number,
    private readonly host: StampHost,
  ) {
    this.table = new StampTable(fileCount);
    this.fresh = new Uint8Array(fileCount);
  }

  isFresh(i: number): boolean {
    return this.fresh[i] === 1;
  }

  /** File `i` changed (tdl wrote or cut it): its stamp is stale. */
  changed(i: number): void {
    this.fresh[i] = 0;
  }

  /** File `i` as found when the output was opened. */
  found(i: number, st: BigIntStats): void {
    this.table.set(i, Number(st.size), stampTimeNs(st), st.ino);
    this.fresh[i] = 1;
  }

  /** Each file's stamp as an object (null: none), after `refresh(fresh)`. */
  list(): (FileStamp | null)[] {
    return Array.from({ length: this.fileCount }, (_, i) => this.table.get(i));
  }

  /**
   * Stamp file `i` from its open handle. Anything odd (another inode, shorter than written) is
   * left for `look` to find and report by name: the stamp then stays stale.
   */
  async fromHandle(i: number, fd: number): Promise<void> {
    const { host } = this;
    const gen = host.gen(i);
    const known = host.knownSize(i);
    const st = await host.statHandle(fd);
    // Removed by someone (the handle still works on it): left for `look` to report.
    if (!host.ident.same(i, st) || st.nlink === 0n) return;
    // The handle is tdl's own: what it names is the file tdl writes.
    host.ident.set(i, st);
    const size = Number(st.size);
    // A write ended while fstat ran: the stamp may be older than the file.
    if (size < known || host.gen(i) !== gen) return;
    this.table.set(i, size, stampTimeNs(st), st.ino);
    this.fresh[i] = 1;
  }

  /** Stamp again the files of `fresh` written since their last stamp. */
  async refresh(fresh: readonly number[]): Promise<void> {
    const { host } = this;
    const stale = fresh.filter((i) => host.onDisk(i) && !this.fresh[i]);
    let named = false;
    await eachLimited(stale, FS_PARALLEL, async (i) => {
      // Open: its handle tells (and names the inode tdl wrote, if not known yet).
      if (host.isOpen(i)) await host.withFile(i, (h) => this.fromHandle(i, h)).catch(() => {});
      if (!this.fresh[i]) {
        named = true;
        await this.look(i);
      }
    });
    // A handle does not see its file's folder moved away (a single file, always open, was found
    // gone only when its final name failed, after the whole download): one file, by its name.
    if (!named && stale.length > 0) await this.look(stale[0]!);
  }

  /** lstat file `i` where tdl expects it, check it is still tdl's, and keep its stamp. */
  async look(i: number): Promise<void> {
    const { host } = this;
    // What tdl had written before looking: a write that ends while lstat runs raises knownSize
    // past what lstat may have seen (a file written in order, as a stream does, grows at each).
    const known = host.knownSize(i);
    const gen = host.gen(i);
    if (!host.ident.has(i) && host.isOpen(i)) {
      // Created by tdl and still open: its handle names the inode that is tdl's.
      const st = await host.withFile(i, (h) => host.statHandle(h));
      if (!host.ident.has(i)) host.ident.set(i, st);
    }
    const current = host.currentPath(i)!;
    const there = await host.lstat(current);
    if (!there) {
      throw new OutputChangedError(`${current} was removed or moved during the download`);
    }
    if (!there.isFile() || !host.ident.same(i, there)) {
      throw new OutputChangedError(`${current} was replaced by another file during the download`);
    }
    const size = Number(there.size);
    if (size < known) {
      throw new OutputChangedError(
        `${current} was truncated during the download (${size} bytes, expected ${known})`,
      );
    }
    if (!host.ident.has(i)) host.ident.set(i, there);
    this.table.set(i, size, stampTimeNs(there), there.ino);
    // A write that ended while lstat ran may have changed the file since.
    this.fresh[i] = host.gen(i) === gen ? 1 : 0;
  }

  /**
   * The first file of `before` (stamps taken earlier; null: no file then) that is no longer as
   * it was, in words (`PATH was removed`, `… was replaced`, `… changed size`, `… was
   * modified`); null when none is. One lstat per file. For `tdl verify`, whose report holds
   * only for files left alone while it read them.
   */
  async firstChange(before: readonly (FileStamp | null)[]): Promise<string | null> {
    const { host } = this;
    const found: (string | null)[] = [];
    const list: number[] = [];
    for (let i = 0; i < before.length; i++) {
      if (before[i] && host.currentPath(i) !== null) list.push(i);
    }
    await eachLimited(list, FS_PARALLEL, async (i) => {
      const was = before[i]!;
      const at = host.currentPath(i)!;
      const now = await host.lstat(at);
      found[i] = !now
        ? `${at} was removed`
        : !now.isFile() || now.ino !== was.ino
          ? `${at} was replaced`
          : Number(now.size) !== was.size
            ? `${at} changed size (${was.size} bytes, now ${now.size})`
            : stampTimeNs(now) !== was.mtimeNs
              ? `${at} was modified`
              : null;
    });
    for (const i of list) if (found[i]) return found[i]!;
    return null;
  }

  /**
   * Check that each file of `indexes` (all when omitted) on disk is still the one tdl uses
   * (`look`). One lstat per file; the stamp it gives is kept for the next checkpoint.
   */
  async checkIntact(indexes?: readonly number[]): Promise<void> {
    const list: number[] = [];
    if (indexes) {
      for (const i of indexes) if (this.host.onDisk(i)) list.push(i);
    } else {
      for (let i = 0; i < this.fileCount; i++) if (this.host.onDisk(i)) list.push(i);
    }
    const t0 = Date.now();
    await eachLimited(list, FS_PARALLEL, (i) => this.look(i));
    log('checked %d files in %d ms', list.length, Date.now() - t0);
  }
}

/** Device and inode of each file, once known: three typed arrays, not two objects a file. */
export class Identities {
  private readonly devs: BigUint64Array;
  private readonly inos: BigUint64Array;
  private readonly known: Uint8Array;

  constructor(n: number) {
    this.devs = new BigUint64Array(n);
    this.inos = new BigUint64Array(n);
    this.known = new Uint8Array(n);
  }

  has(i: number): boolean {
    return this.known[i] === 1;
  }

  dev(i: number): bigint | null {
    return this.known[i] ? this.devs[i]! : null;
  }

  /** Is `st` the file known as `i` (true while it is not known)? */
  same(i: number, st: { dev: bigint; ino: bigint }): boolean {
    return !this.known[i] || (this.devs[i] === st.dev && this.inos[i] === st.ino);
  }

  set(i: number, st: { dev: bigint; ino: bigint }): void {
    this.devs[i] = st.dev;
    this.inos[i] = st.ino;
    this.known[i] = 1;
  }
}
