/**
 * What of the output is written but not yet durable, and making it durable: DiskStorage's syncs.
 *
 * Each file written counts its completed writes (`gen`); a sync covers the writes completed
 * before it started, so a file is marked synced only when no write completed while its sync ran.
 * Two sets: `dirty`, files written since the last checkpoint took them (to sync and stamp), and
 * `unsynced`, files not known to be durable. Syncs are not per file when there are many: from
 * SYNCFS_MIN_FILES files one syncfs per file system does it (see fs-util.ts), else one fdatasync
 * each, at most one at a time per file. A failure is kept per file and reported by the next sync
 * (the kernel reports a write-back error once, to one handle), wherever it was met: in the
 * background (`syncAhead`) or as a file left the pool.
 *
 * The syncfs calls name one folder per device: the device of each file is its identity's (see
 * Identities in stamps.ts).
 */
import type { BigIntStats } from 'node:fs';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { logger } from '../log.js';
import type { DiskError } from '../errors.js';
import { eachLimited, fdCall, FS_PARALLEL, syncFileSystems, toDiskError } from './fs-util.js';
import type { Identities } from './stamps.js';

const log = logger('tdl:storage');

/**
 * Dirty files from which a sync goes through syncfs (one call for the whole file system) rather
 * than one fdatasync each: an fdatasync costs a journal commit, and a closed file an open too.
 */
export const SYNCFS_MIN_FILES = 8;
/** Most folders named to one `sync -f` (files of unknown device are named by their folder). */
const SYNCFS_MAX_PATHS = 64;

/** What the syncs need of the storage. */
export interface DurabilityHost {
  /** syncfs is usable for this output (asked each time: it may stop being). */
  syncfs(): boolean;
  /** Run `fn` on file `i`'s descriptor, opening it through the pool if needed. */
  withFile<T>(i: number, fn: (fd: number) => Promise<T>): Promise<T>;
  /** Is file `i` open in the pool now? */
  isOpen(i: number): boolean;
  statHandle(fd: number): Promise<BigIntStats>;
  currentPath(i: number): string | null;
  readonly ident: Identities;
}

export class Durability {
  /** Written (or found unsynced) since the last checkpoint took them: to sync and stamp. */
  private dirty = new Set<number>();
  /** Not known to be durable yet. */
  private unsynced = new Set<number>();
  /** Sync failures met in the background or while closing a handle, for the next sync to report. */
  private readonly errors = new Map<number, DiskError>();
  /** Writes completed per file: a sync covers the writes before it started, no later ones. */
  private readonly writeGen: Uint32Array;
  private readonly syncing = new Map<number, Promise<void>>();

  constructor(
    fileCount: number,
    private readonly host: DurabilityHost,
  ) {
    this.writeGen = new Uint32Array(fileCount);
  }

  /** Writes completed to file `i` so far (a stamp taken across a change of it is stale). */
  gen(i: number): number {
    return this.writeGen[i]!;
  }

  /** A write to file `i` completed. */
  written(i: number): void {
    this.writeGen[i]!++;
    this.dirty.add(i);
    this.unsynced.add(i);
  }

  /** File `i`'s contents were relied on without being known durable: sync and stamp it next. */
  markDirty(i: number): void {
    this.dirty.add(i);
    this.unsynced.add(i);
  }

  /** Files written since the last call (their data may not be durable yet). */
  takeDirty(): number[] {
    const d = [...this.dirty];
    this.dirty.clear();
    return d;
  }

  clearDirty(): void {
    this.dirty.clear();
  }

  /** The data is to be removed: nothing written so far needs to be durable. */
  discard(): void {
    this.unsynced.clear();
    this.dirty.clear();
  }

  /**
   * File `i` leaves the pool: without syncfs it is synced on its handle now (so that the
   * checkpoint need not open it again), unless a sync of it is under way; a failure is kept.
   */
  async beforeClose(i: number, fd: number): Promise<void> {
    if (this.host.syncfs() || !this.unsynced.has(i) || this.syncing.has(i)) return;
    await this.syncNow(i, fd).catch(() => {});
  }

  /**
   * fdatasync file `i` (through the pool, or on the handle given), one sync at a time per file.
   * It is marked synced only if no write completed while it ran. A failure is thrown and kept
   * for the next checkpoint.
   */
  async syncNow(i: number, fd?: number): Promise<void> {
    for (let r = this.syncing.get(i); r; r = this.syncing.get(i)) await r.catch(() => {});
    const failed = this.errors.get(i);
    if (failed) throw failed;
    if (!this.unsynced.has(i)) return;
    const gen = this.writeGen[i];
    const run = (async () => {
      try {
        if (fd !== undefined) await fdCall.datasync(fd);
        else await this.host.withFile(i, (x) => fdCall.datasync(x));
      } catch (e) {
        const err = toDiskError(e, `cannot sync ${this.host.currentPath(i)}`);
        this.errors.set(i, err);
        throw err;
      }
      if (this.writeGen[i] === gen) this.unsynced.delete(i);
    })();
    this.syncing.set(i, run);
    try {
      await run;
    } finally {
      this.syncing.delete(i);
    }
  }

  /**
   * Make the data already written to these files durable: one syncfs per file system when
   * SYNCFS_MIN_FILES or more need it (and syncfs works here), else one fdatasync each for those
   * not synced since their last write (a file synced when it left the pool is not opened again).
   */
  async syncFiles(indexes: readonly number[]): Promise<void> {
    if (this.host.syncfs()) {
      const todo = indexes.filter((i) => this.unsynced.has(i) && !this.errors.has(i));
      if (todo.length >= SYNCFS_MIN_FILES && (await this.syncByFileSystem(todo))) {
        // Every write made before the call is durable now. A file written again while syncfs
        // ran stays unsynced (the next sync covers that write) but needs no sync of its own now:
        // an fdatasync each cost a journal commit for files a checkpoint beside the download
        // finds still being written (93 of them, 0.14 s, in a 3,000-file download).
        indexes = indexes.filter((i) => this.errors.has(i));
      }
    }
    const results = await Promise.allSettled(
      indexes.map(async (i) => {
        await this.syncNow(i);
        this.errors.delete(i);
      }),
    );
    for (const r of results) {
      if (r.status === 'rejected') throw toDiskError(r.reason, 'cannot sync output');
    }
  }

  /** Make everything written so far durable (the written-since marks stay). */
  syncAll(): Promise<void> {
    return this.syncFiles([...this.unsynced, ...this.errors.keys()]);
  }

  /**
   * Start an fdatasync of each file written since its last sync and return at once (see
   * DiskStorage.syncAhead). Only for a few files: many go through syncfs at the checkpoints.
   */
  syncAhead(): void {
    const todo = [...this.unsynced].filter((i) => !this.syncing.has(i) && !this.errors.has(i));
    if (todo.length === 0 || todo.length >= SYNCFS_MIN_FILES) return;
    for (const i of todo) this.syncNow(i).catch(() => {});
  }

  /**
   * Sync these files with one syncfs per file system that holds them. Each is marked synced if
   * no write to it completed while the call ran (a write in flight may have missed it). False
   * when syncfs could not be used or failed: the caller syncs file by file.
   */
  private async syncByFileSystem(indexes: readonly number[]): Promise<boolean> {
    const { ident } = this.host;
    const gens = indexes.map((i) => this.writeGen[i]!);
    // A file created by tdl and never stamped: its handle tells its device (else its folder is
    // named, and thousands of folders would exceed SYNCFS_MAX_PATHS).
    await eachLimited(
      indexes.filter((i) => !ident.has(i) && this.host.isOpen(i)),
      FS_PARALLEL,
      async (i) => {
        const st = await this.host.withFile(i, (h) => this.host.statHandle(h)).catch(() => null);
        if (st && !ident.has(i)) ident.set(i, st);
      },
    );
    // One folder per device; a file whose device is not known yet is looked up by its folder.
    const byDev = new Map<bigint, string>();
    const dirs = new Set<string>();
    for (const i of indexes) {
      const dev = ident.dev(i);
      if (dev === null) dirs.add(path.dirname(this.host.currentPath(i)!));
      else if (!byDev.has(dev)) byDev.set(dev, path.dirname(this.host.currentPath(i)!));
    }
    for (const d of byDev.values()) dirs.add(d);
    if (dirs.size > SYNCFS_MAX_PATHS) return false;
    const t0 = Date.now();
    if (!(await syncFileSystems([...dirs]))) return false;
    indexes.forEach((i, k) => {
      if (this.writeGen[i] === gens[k]) this.unsynced.delete(i);
    });
    log(
      'synced %d files with syncfs on %d folders in %d ms',
      indexes.length,
      dirs.size,
      Date.now() - t0,
    );
    return true;
  }
}

/**
 * Make the names in these folders durable: one syncfs per file system when there are
 * SYNCFS_MIN_FILES folders or more and `syncfs` may be used (it commits the renames with
 * everything else), else, or when syncfs fails, an fsync per folder, a few at a time (each is a
 * journal commit). `known`: the device of a folder, where a file tdl had open went to it.
 */
export async function syncFolders(
  dirs: readonly string[],
  known: ReadonlyMap<string, bigint>,
  syncfs: boolean,
): Promise<void> {
  if (dirs.length >= SYNCFS_MIN_FILES && syncfs) {
    // One folder per known device; the others by name.
    const byDev = new Map<bigint, string>();
    const names: string[] = [];
    for (const d of dirs) {
      const dev = known.get(d);
      if (dev === undefined) names.push(d);
      else if (!byDev.has(dev)) byDev.set(dev, d);
    }
    names.push(...byDev.values());
    const t0 = Date.now();
    if (names.length <= SYNCFS_MAX_PATHS && (await syncFileSystems(names))) {
      log('synced %d folders with syncfs in %d ms', dirs.length, Date.now() - t0);
      return;
    }
  }
  // Folders are synced a few at a time: each is a journal commit, and commits overlap.
  await eachLimited(dirs, 4, syncDir);
}

/** fsync a folder so that names created or renamed in it survive a crash (best effort). */
export async function syncDir(dir: string): Promise<void> {
  let h: FileHandle | null = null;
  try {
    h = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    await h.sync();
  } catch (e) {
    log('cannot sync folder %s: %s', dir, (e as Error).message);
  } finally {
    await h?.close().catch(() => {});
  }
}
