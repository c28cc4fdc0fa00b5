/**
 * File I/O for verified pieces.
 *
 * In `write` mode every file of the torrent lives under its working name `<name>.part` until the
 * torrent is complete; a file already present under its final name is used in place and moved to
 * its working name just before the first byte is written to it. A file that is not there is
 * created (empty, under its working name) when its first piece is written. A verified piece is
 * written straight to its place, split across files where it crosses a boundary. Nothing but
 * whole verified pieces is ever written, and nothing is ever shrunk or deleted before the whole
 * torrent is verified: `finalize()` then gives every file its exact size and its final name.
 *
 * In `read` mode (`tdl verify`, seeding) files are opened read-only under either name and nothing
 * is created or changed; a missing file reads as zeros.
 *
 * What is on disk is learnt once at open, with one listing per existing folder (scan.ts). Files
 * are then opened on demand through a bounded pool (see file-pool.ts), so any number of files
 * works under a small RLIMIT_NOFILE. BEP 47 padding files are never created, opened or
 * written: they read as zeros.
 *
 * System calls per file of a fresh download: one `open` (a file tdl creates needs no `fstat`)
 * and one `fstat` (its stamp) + `close` per time in the pool, its `pwrite`s (with an `fstat`
 * before those that extend what tdl wrote, to catch a truncation the write would hide), one
 * `lstat` in the check before completion and one `rename` at the end. Syncs are not per file:
 * each checkpoint syncs what was written since the last one in one batch, by syncfs where it can.
 * All but large writes are made inline (synchronously) while the disk answers fast, opens and
 * closes included (the pool holds raw descriptors): see Inline in fs-util.ts.
 *
 * Beside this module: what is on disk at open (scan.ts); writing a piece's runs to its files
 * (piece-writes.ts); what is written but not yet durable, and the syncs (durability.ts); each
 * file's stamp and the check that it is still tdl's (stamps.ts); reading pieces back from the
 * files, zeros or the parts file (piece-reads.ts).
 */
import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  renameSync,
  type BigIntStats,
} from 'node:fs';
import { mkdir, open, rename, rmdir, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { logger } from '../log.js';
import { DiskError } from '../errors.js';
import { Durability, SYNCFS_MIN_FILES, syncFolders, type DurabilityHost } from './durability.js';
import { fdLimit } from '../fd-limit.js';
import { FilePool, poolCapacity } from './file-pool.js';
import {
  eachLimited,
  fdCall,
  FS_PARALLEL,
  Inline,
  lstatInline,
  makeFolders,
  syncfsFlushes,
  startSyncHelper,
  stopSyncHelper,
  syncfsUsable,
  toDiskError,
} from './fs-util.js';
import type { Layout, Span } from './layout.js';
import { PART_SUFFIX, partPaths, plainPartPaths } from './names.js';
import {
  planFile,
  planFileCount,
  planFileLink,
  planFilePadding,
  planFilePath,
  type OutputPlan,
} from './output.js';
import { PartsFile } from './parts.js';
import { PieceWrites } from './piece-writes.js';
import { scanOutput } from './scan.js';
import { addPieceRuns, readRuns, type AbsentFn, type ReadSource, type Run } from './piece-reads.js';
import type { StampTable } from './resume.js';
import {
  Identities,
  OutputChangedError,
  Stamps,
  type FileStamp,
  type StampHost,
} from './stamps.js';

export { toDiskError } from './fs-util.js';

const log = logger('tdl:storage');

export type StorageMode = 'write' | 'read';

export interface StorageOptions {
  mode?: StorageMode;
  /** Most files held open at once (default: from the open-file limit, see poolCapacity). */
  maxOpenFiles?: number;
  /** Peer sockets the process may hold, kept out of the file pool's share of descriptors. */
  peerSockets?: number;
  /**
   * Files selected (one flag per torrent file; null or absent: all). Files not selected are never
   * created, opened or written: their bytes in boundary pieces go to the parts file.
   */
  selected?: Uint8Array | null;
  /** The side file of boundary pieces (see parts.ts) and the torrent's info hash; absent: none. */
  partsFile?: { path: string; infoHash: Buffer };
  /** Make small calls synchronously while the disk is fast (see Inline; default true). */
  inline?: boolean;
  /**
   * Write mode: create the planned folders, and a partial selection's parts file, at open
   * (default true). False for `tdl seed`, which must find the data complete before it changes
   * anything: nothing is created at open, and the folder of a file tdl creates is made with it.
   */
  prepare?: boolean;
}

/**
 * One file as storage sees it now: a snapshot made by `files` (an object per file, for reports
 * and tests; the download itself reads the per-file accessors of DiskStorage).
 */
export interface StoredFile {
  /** Final path. */
  readonly path: string;
  /** Working path while the torrent is incomplete. */
  readonly partPath: string;
  readonly length: number;
  readonly offset: number;
  /** BEP 47 padding: never on disk, reads as zeros. */
  readonly padding: boolean;
  /** Part of the selection (always true without one): only these are ever on disk. */
  readonly selected: boolean;
  /**
   * Where the file is (or, in write mode, will be created) on disk now; null when it is not
   * there (read mode, padding).
   */
  readonly current: string | null;
  /** The file was on disk before this run, under either name. */
  readonly existed: boolean;
  /** Both names existed when opened: the working file is used, the final one is replaced at the end. */
  readonly shadowed: boolean;
  /**
   * Read mode: something that is not a regular file (a folder, a FIFO, a device) stands at its
   * path; the file is taken as not there.
   */
  readonly notAFile: boolean;
}

/** Bits of DiskStorage's per-file flags. */
const PADDING = 1;
const SELECTED = 2;
const EXISTED = 4;
const SHADOWED = 8;
const NOT_A_FILE = 16;
/** Where a file is now (DiskStorage's `where`): nowhere, under its final name, its working name. */
const NOWHERE = 0;
const AT_FINAL = 1;
const AT_PART = 2;

export class DiskStorage {
  /** Files of the torrent (padding included). */
  readonly fileCount: number;
  /** PADDING, SELECTED, EXISTED, SHADOWED bits per file: no object per file (100,000 files). */
  private readonly flags: Uint8Array;
  /** NOWHERE, AT_FINAL or AT_PART per file. */
  private readonly where: Uint8Array;
  /**
   * Working paths, only when some could not be `final + .part` (see partPaths); else each is
   * made when needed.
   */
  private readonly partPathList: string[] | null;
  /** Open files: raw descriptors, so that opens and closes can be made inline. */
  private readonly pool: FilePool<number>;
  /** The file is on disk (found at open, or created by us). */
  private readonly exists: Uint8Array;
  /** Device and inode of the file tdl uses, once known. */
  private readonly ident: Identities;
  /** Smallest size each file must have: its size when found, grown by our writes. */
  private readonly knownSize: Float64Array;
  /** Each file's stamp, and whether it is still tdl's (see stamps.ts). */
  private readonly stamp: Stamps;
  /** What is written and not yet durable, and the syncs (see durability.ts). */
  private readonly durable: Durability;
  /**
   * Syncs go through syncfs when there are many (see syncFiles); else a file is synced on close.
   * Asked each time: syncfs stops being usable once `sync -f` turns out to be missing. Never on
   * a file system whose syncfs may flush nothing (FUSE, network: see syncfsFlushes).
   */
  private get syncfs(): boolean {
    if (!syncfsUsable()) return false;
    this.syncfsHere ??= syncfsFlushes(this.plan.root); // null until the folder is there
    return this.syncfsHere === true;
  }
  private syncfsHere: boolean | null = null;
  /** This storage started the sync helper (see fs-util.ts) and stops it when closed. */
  private syncHelper = false;
  private pending = new Set<Promise<void>>();
  /** The runs of pieces being written to their files (see piece-writes.ts). */
  private readonly writes: PieceWrites;
  /** The torrent's folders this run created at open, parents first (see removeMadeFolders). */
  private readonly made: string[] = [];
  private beforeWrite: ((index: number) => Promise<void>) | null = null;
  private closed = false;
  /** Copies of boundary pieces (null: no parts file). */
  parts: PartsFile | null = null;
  /**
   * Pieces right in the parts file and not in their (selected) files, whose bytes there are
   * older data (useCopy): read from the copy alone until written to the files.
   */
  private readonly fromCopy = new Set<number>();
  /** Small calls (fstat, lstat, rename, small writes) made synchronously while they are fast. */
  readonly inline: Inline;
  /** Where reads find each run's bytes (see piece-reads.ts). */
  private readonly reads: ReadSource;
  /**
   * Read mode (seeding): each file's modification time when found, and the look at each file
   * that the reads finished so far wait for, not begun yet (see servedAsFound).
   */
  private readonly foundMtime: BigInt64Array | null;
  private readonly looks = new Map<number, Promise<void>>();

  private constructor(
    private readonly plan: OutputPlan,
    private readonly layout: Layout,
    readonly mode: StorageMode,
    capacity: number,
    selected: Uint8Array | null,
    inline: boolean,
    private readonly prepare: boolean,
  ) {
    this.inline = new Inline(inline);
    const n = planFileCount(plan);
    this.fileCount = n;
    this.flags = new Uint8Array(n);
    this.where = new Uint8Array(n);
    let padded = false;
    for (let i = 0; i < n; i++) {
      // A link entry holds no data either: never on disk until storage/attributes.ts makes it.
      const pad = planFilePadding(plan, i);
      if (pad) padded = true;
      const padding = pad || planFileLink(plan, i);
      this.flags[i] = (padding ? PADDING : 0) | (!selected || selected[i] === 1 ? SELECTED : 0);
    }
    this.hasPadding = padded;
    this.foundMtime = mode === 'read' ? new BigInt64Array(n) : null;
    this.partPathList = plainPartPaths(plan) ? null : partPaths(plan);
    this.pool = new FilePool<number>(
      capacity,
      (fd) => this.closeFd(fd),
      (i, fd) => this.beforeClose(i, fd),
    );
    this.exists = new Uint8Array(n);
    this.ident = new Identities(n);
    this.knownSize = new Float64Array(n);
    // What the syncs, the stamps and the reads need of the files: one view for the three.
    const view: DurabilityHost & StampHost & ReadSource = {
      ident: this.ident,
      syncfs: () => this.syncfs,
      parts: () => this.parts,
      onDisk: (i) => this.onDisk(i),
      isPadding: (i) => this.isPadding(i),
      holds: (sp) => this.fileHolds(sp),
      copyOnly: (p) => this.fromCopy.has(p),
      knownSize: (i) => this.knownSize[i]!,
      gen: (i) => this.durable.gen(i),
      isOpen: (i) => this.pool.has(i),
      withFile: (i, fn) => this.withFile(i, fn),
      statHandle: (fd) => this.statHandle(fd),
      lstat: (p) => this.lstatNow(p),
      inline: this.inline,
      currentPath: (i) => this.currentPath(i),
      unselectedPaths: (i) =>
        this.isSelected(i) || (this.flags[i]! & PADDING) !== 0
          ? null
          : [this.finalPath(i), this.partPath(i)],
    };
    this.durable = new Durability(n, view);
    this.stamp = new Stamps(n, view);
    this.reads = view;
    this.writes = new PieceWrites({
      inline: this.inline,
      withFile: (i, fn) => this.withFile(i, fn),
      statHandle: (fd) => this.statHandle(fd),
      knownSize: (i) => this.knownSize[i]!,
      written: (i, end) => {
        this.knownSize[i] = Math.max(this.knownSize[i]!, end);
        this.stamp.changed(i);
        this.durable.written(i);
      },
      atWorkingName: (i) => this.where[i] === AT_PART,
      movedToWorkingName: (i) => void (this.where[i] = AT_PART),
      finalPath: (i) => this.finalPath(i),
      partPath: (i) => this.partPath(i),
      currentPath: (i) => this.currentPath(i),
    });
  }

  /** Final path of file `i`. */
  finalPath(i: number): string {
    return planFilePath(this.plan, i);
  }

  /** Working path of file `i` while the torrent is incomplete (made on each call). */
  partPath(i: number): string {
    return this.partPathList ? this.partPathList[i]! : this.finalPath(i) + PART_SUFFIX;
  }

  /**
   * Where file `i` is (or, in write mode, will be created) on disk now; null when it is not
   * there (read mode, padding).
   */
  currentPath(i: number): string | null {
    const w = this.where[i];
    return w === AT_PART ? this.partPath(i) : w === AT_FINAL ? this.finalPath(i) : null;
  }

  /** Some file is BEP 47 padding (see dataBytes). */
  readonly hasPadding: boolean;

  /** Bytes of piece `index` that are files' data, BEP 47 padding (zeros, never on disk) left out. */
  dataBytes(index: number): number {
    if (!this.hasPadding) return this.layout.pieceSize(index);
    return this.layout.dataBytes(index, (i) => this.isPadding(i));
  }

  /** BEP 47 padding: never on disk, reads as zeros. */
  isPadding(i: number): boolean {
    return (this.flags[i]! & PADDING) !== 0;
  }

  /** Part of the selection (always true without one): only these are ever on disk. */
  isSelected(i: number): boolean {
    return (this.flags[i]! & SELECTED) !== 0;
  }

  /** File `i` is a real file on disk (found at open, or created by tdl; never padding). */
  private onDisk(i: number): boolean {
    return this.exists[i] === 1 && !this.isPadding(i);
  }

  /** A selected file that is not padding: one that tdl keeps on disk. */
  /** Every stored file is under its final name: finalize would rename and create nothing. */
  get allFinal(): boolean {
    for (let i = 0; i < this.fileCount; i++) {
      if (this.stored(i) && this.where[i] !== AT_FINAL) return false;
    }
    return true;
  }

  private stored(i: number): boolean {
    return (this.flags[i]! & (PADDING | SELECTED)) === SELECTED;
  }

  /** File `i` was on disk before this run, under either name. */
  existed(i: number): boolean {
    return (this.flags[i]! & EXISTED) !== 0;
  }

  /** Both names of file `i` existed when opened: the working file is used, the final one replaced. */
  shadowed(i: number): boolean {
    return (this.flags[i]! & SHADOWED) !== 0;
  }

  /**
   * Selected files found under both names (`name.part` beside `name`): the `.part` is what is
   * read, as a download resumes it. For messages that must say so.
   */
  shadowedFiles(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.fileCount; i++) {
      if (this.isSelected(i) && this.shadowed(i)) out.push(i);
    }
    return out;
  }

  /**
   * A snapshot of every file (an object each: for reports and tests; the download reads the
   * accessors above, so that 100,000 files cost no object each).
   */
  get files(): StoredFile[] {
    const out: StoredFile[] = [];
    for (let i = 0; i < this.fileCount; i++) {
      const f = planFile(this.plan, i);
      out.push({
        path: f.path,
        partPath: this.partPath(i),
        length: f.length,
        offset: f.offset,
        padding: this.isPadding(i),
        selected: this.isSelected(i),
        current: this.currentPath(i),
        existed: this.existed(i),
        shadowed: this.shadowed(i),
        notAFile: (this.flags[i]! & NOT_A_FILE) !== 0,
      });
    }
    return out;
  }

  /**
   * Open the output. `write`: create the folders, and find each file under its working name,
   * else under its final name (else it is created when first written). `read`: find what exists.
   */
  static async open(
    plan: OutputPlan,
    layout: Layout,
    opts: StorageOptions = {},
  ): Promise<DiskStorage> {
    const capacity = opts.maxOpenFiles ?? poolCapacity(fdLimit(), opts.peerSockets);
    const s = new DiskStorage(
      plan,
      layout,
      opts.mode ?? 'write',
      capacity,
      opts.selected ?? null,
      opts.inline ?? true,
      opts.prepare ?? true,
    );
    try {
      if (opts.partsFile) {
        const { path: file, infoHash } = opts.partsFile;
        s.parts = await PartsFile.open(file, layout, infoHash, s.mode === 'write');
        // A partial selection marks its output with the file, records or not (output.ts).
        let partial = false;
        for (let i = 0; i < s.fileCount && !partial; i++) {
          partial = !s.isSelected(i) && !s.isPadding(i);
        }
        if (s.mode === 'write' && partial && s.prepare) {
          await s.parts.create();
        }
      }
      await s.scan();
      // Syncs go through a small helper process forked now, while tdl is small (see SyncHelper);
      // not for fewer files than a syncfs is ever used for (spawning it cost the main thread
      // about 10 ms at every start).
      if (s.mode === 'write' && s.fileCount >= SYNCFS_MIN_FILES && s.syncfs) {
        startSyncHelper();
        s.syncHelper = true;
      }
    } catch (e) {
      await s.close().catch(() => {});
      // Nothing was written: the folders made so far go again (a disk out of space or inodes
      // after the top folder was made left it, and the next run nested the torrent inside it).
      await s.removeMadeFolders();
      throw toDiskError(e, 'cannot open output');
    }
    log('opened %d files under %s (%s), %d open at most', s.fileCount, plan.root, s.mode, capacity);
    return s;
  }

  /** Learn which files exist, under which name, with one listing per existing folder. */
  private async scan(): Promise<void> {
    const write = this.mode === 'write';
    const { notAFile } = await scanOutput({
      fileCount: this.fileCount,
      write,
      prepare: this.prepare,
      parent: this.plan.parent,
      dirs: this.plan.dirs,
      stored: (i) => this.stored(i),
      finalPath: (i) => this.finalPath(i),
      partPath: (i) => this.partPath(i),
      mkdir: async (d) => {
        const made = await this.mkdirNow(d);
        if (made) this.made.push(d);
        return made;
      },
      mkdirs: async (d) => void (await mkdirOrFail(d, true)),
      lstat: (p) => this.lstatNow(p),
      inline: this.inline,
      found: ({ index: i, atPart, shadowed, stat }) => {
        this.where[i] = atPart ? AT_PART : AT_FINAL;
        this.flags[i]! |= EXISTED | (shadowed ? SHADOWED : 0);
        this.exists[i] = 1;
        this.ident.set(i, stat);
        this.knownSize[i] = Number(stat.size);
        this.stamp.found(i, stat);
        if (this.foundMtime) this.foundMtime[i] = stat.mtimeNs;
      },
    });
    for (const i of notAFile) this.flags[i]! |= NOT_A_FILE;
    if (write) {
      for (let i = 0; i < this.fileCount; i++) {
        if (this.stored(i) && this.where[i] === NOWHERE) this.where[i] = AT_PART;
      }
    }
  }

  /**
   * Open file `i` for the pool: read-only in read mode; created (exclusively) on first use.
   * Inline while that is fast: creating a small file costs less than the hand-off to a thread.
   */
  private async openHandle(i: number): Promise<number> {
    const write = this.mode === 'write';
    for (let attempt = 0; ; attempt++) {
      const at = this.where[i];
      const where = this.currentPath(i)!;
      const create = write && !this.exists[i];
      const flags =
        (write ? constants.O_RDWR : constants.O_RDONLY) |
        constants.O_NOFOLLOW |
        (create ? constants.O_CREAT | constants.O_EXCL : 0);
      let fd: number;
      try {
        if (create) await this.folderFor(where);
        fd = this.inline.on
          ? this.inline.run(() => openSync(where, flags, 0o644))
          : await fdCall.open(where, flags, 0o644);
      } catch (e) {
        // Moved to its working name (or its final one) while we were opening it: once more.
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && this.where[i] !== at && attempt < 2) {
          continue;
        }
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !create) {
          throw new OutputChangedError(`${where} was removed ${this.during()}`);
        }
        throw toDiskError(e, `cannot ${create ? 'create' : 'open'} ${where}`);
      }
      if (create) {
        // Made just now, exclusively, without following links: a regular file, ours. Its
        // identity is learnt by the fstat that stamps it (see beforeClose) or by a later open.
        this.exists[i] = 1;
        return fd;
      }
      try {
        const st = await this.statHandle(fd);
        if (!this.ident.same(i, st)) {
          throw new OutputChangedError(`${where} was replaced by another file ${this.during()}`);
        }
        if (!st.isFile()) throw new DiskError(`${where} is not a regular file`);
        this.ident.set(i, st);
      } catch (e) {
        await this.closeFd(fd).catch(() => {});
        throw toDiskError(e, `cannot open ${where}`);
      }
      return fd;
    }
  }

  /** Without `prepare`, the folder of a file tdl creates is made then (recursively). */
  private async folderFor(file: string): Promise<void> {
    if (!this.prepare) await mkdirOrFail(path.dirname(file), true);
  }

  /** Close a descriptor of the pool: inline while that is fast. */
  private async closeFd(fd: number): Promise<void> {
    if (this.inline.on) this.inline.run(() => closeSync(fd));
    else await fdCall.close(fd);
  }

  /**
   * A file leaving the pool after writes is stamped on its handle first (one fstat: identity,
   * size, mtime), so that the next checkpoint need not look it up by name. Without syncfs it is
   * also synced, so that the checkpoint need not open it again; a failure is kept for that
   * checkpoint to report (the kernel reports a write-back error once, to this handle).
   */
  private async beforeClose(i: number, fd: number): Promise<void> {
    if (this.mode !== 'write') return;
    if (!this.stamp.isFresh(i)) await this.stamp.fromHandle(i, fd).catch(() => {});
    await this.durable.beforeClose(i, fd);
  }

  /** When a file changed under tdl, in a message: its download, or its seeding or check. */
  private during(): string {
    return this.mode === 'write' ? 'during the download' : 'while tdl was reading it';
  }

  private withFile<T>(i: number, fn: (fd: number) => Promise<T>): Promise<T> {
    return this.pool.use(i, () => this.openHandle(i), fn);
  }

  /** mkdir (not recursive), inline while that is fast; true when it created the folder. */
  private async mkdirNow(dir: string): Promise<boolean> {
    if (!this.inline.on) return mkdirOrFail(dir, false);
    try {
      this.inline.run(() => mkdirSync(dir));
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw toDiskError(e, `cannot create folder ${dir}`);
    } finally {
      await this.inline.pace();
    }
  }

  /** fstat an open handle: inline while that is fast, else through the thread pool. */
  private async statHandle(fd: number): Promise<BigIntStats> {
    if (!this.inline.on) return fdCall.stat(fd);
    return this.inline.run(() => fstatSync(fd, { bigint: true }));
  }

  /** lstatOrNull, inline while that is fast (the caller may be looking at thousands). */
  private lstatNow(p: string): Promise<BigIntStats | null> {
    return lstatInline(p, this.inline, true);
  }

  /** Called (and awaited) before each piece's first byte is written: the resume journal's hook. */
  setBeforeWrite(hook: ((index: number) => Promise<void>) | null): void {
    this.beforeWrite = hook;
  }

  /** Drop the piece writes queued and not begun (see PieceWrites.cancelQueued). */
  cancelQueuedWrites(): number {
    return this.writes.cancelQueued();
  }

  /** Write a whole verified piece. Concurrent writes to distinct pieces are fine. */
  writePiece(index: number, data: Buffer): Promise<void> {
    if (this.closed) return Promise.reject(new DiskError('storage is closed'));
    if (this.mode !== 'write') return Promise.reject(new DiskError('storage is read-only'));
    return this.track(this.doWrite(index, data));
  }

  /**
   * Put the bytes of piece `index` (`data`, read from its copy in the parts file: see
   * piecesToCopy) into the selected files that do not hold them. A file that does (complete from
   * an earlier, narrower selection, under its final name) is not touched: it keeps its name.
   */
  writeFromCopy(index: number, data: Buffer): Promise<void> {
    if (this.closed) return Promise.reject(new DiskError('storage is closed'));
    if (this.mode !== 'write') return Promise.reject(new DiskError('storage is read-only'));
    const all = this.fromCopy.has(index);
    return this.track(this.doWrite(index, data, (s) => all || !this.fileHolds(s)));
  }

  /** A write in flight, until it settles (see flush). */
  private track(p: Promise<void>): Promise<void> {
    this.pending.add(p);
    void p.then(
      () => this.pending.delete(p),
      () => this.pending.delete(p),
    );
    return p;
  }

  /** Write piece `index`; `fromCopy`: only the spans it accepts, and not to the parts file. */
  private async doWrite(
    index: number,
    data: Buffer,
    fromCopy?: (s: Span) => boolean,
  ): Promise<void> {
    if (this.beforeWrite) await this.beforeWrite(index);
    const spans = this.layout.spans(index);
    // A boundary piece: a copy goes to the parts file, never into the files not selected.
    const jobs: Promise<void>[] = [];
    let outside = false;
    let inside = 0;
    for (const s of spans) {
      if (this.stored(s.fileIndex)) inside++;
      else if (!this.isPadding(s.fileIndex)) outside = true;
    }
    if (outside && !fromCopy) {
      if (!this.parts) throw new DiskError(`piece ${index} touches a file not selected`);
      jobs.push(this.parts.write(index, data));
    }
    // Padding is zeros by definition (the piece's hash checked them): nothing to store. A file
    // not selected is never touched (its bytes went to the parts file).
    const own =
      inside === spans.length && !fromCopy
        ? spans
        : spans.filter((s) => this.stored(s.fileIndex) && (!fromCopy || fromCopy(s)));
    if (own.length > 0) {
      jobs.push(this.writes.write(index, data, own));
    }
    const results = await Promise.allSettled(jobs);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    // Its bytes are in its files now: read from there again.
    this.fromCopy.delete(index);
  }

  /** Read a piece back from disk. Bytes past the end of a file, or of a missing file, read as 0. */
  readPiece(index: number, into?: Buffer): Promise<Buffer> {
    return this.readPieces(index, index, into);
  }

  /**
   * Read the consecutive pieces `first..last` into one buffer, one read per file run. Bytes past
   * the end of a file, of a missing file or of padding read as 0; those that are not padding are
   * told to `absent` (offsets in the buffer): they are not on disk.
   */
  async readPieces(first: number, last: number, into?: Buffer, absent?: AbsentFn): Promise<Buffer> {
    if (this.closed) throw new DiskError('storage is closed');
    const start = this.layout.pieceOffset(first);
    const size = this.layout.pieceOffset(last) + this.layout.pieceSize(last) - start;
    const buf = into && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafe(size);
    const runs: Run[] = [];
    for (let p = first; p <= last; p++) {
      const base = this.layout.pieceOffset(p) - start;
      addPieceRuns(this.reads, runs, p, this.layout.spans(p), base);
    }
    await readRuns(this.reads, runs, buf, false, absent);
    return buf;
  }

  /**
   * Read `length` bytes at `begin` of piece `index` (a block to serve to a peer), from wherever
   * its files are now: working or final names, before or after `finalize()`, in either mode.
   * The caller serves only pieces it has verified: a file shorter than them has changed on disk
   * (OutputChangedError, never zeros sent as data). DiskError on a bad range or a failed read. With `into` (at least `length` bytes), the bytes go there.
   */
  readBlock(index: number, begin: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.readRange(index, begin, length, into, true);
  }

  /**
   * Read mode: the files a block was just read from are still as checked, looked at (one
   * `fstat` of the open handle) after the read and before the block goes out: a file edited in
   * place since, at the same size, would be served as verified data, which hashes wrong at the
   * peer, and real clients then ban tdl. OutputChangedError names it: the seed ends (exit 6), to
   * be checked again. Its modification time says so (a write sets it before it changes any byte;
   * a rename or a chmod moves only the change time). The reads finished within one turn of the
   * event loop share one look per file, begun after them (lookAfter).
   */
  private servedAsFound(spans: readonly Span[]): Promise<void> | undefined {
    let waits: Promise<void>[] | undefined;
    for (const s of spans) {
      const i = s.fileIndex;
      if (!this.onDisk(i)) continue;
      let look = this.looks.get(i);
      if (look === undefined) {
        look = this.lookAfter(i);
        this.looks.set(i, look);
      }
      (waits ??= []).push(look);
    }
    if (waits === undefined) return undefined;
    return waits.length === 1 ? waits[0] : Promise.all(waits).then(() => {});
  }

  /** The look at file `i` for the reads finished before it begins (next turn of the loop). */
  private async lookAfter(i: number): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    // Reads that finish from here on wait for the next look.
    this.looks.delete(i);
    if (this.closed) return;
    const st = await this.withFile(i, (fd) => this.statHandle(fd));
    // Cut short: the next read says so, in its own words (piece-reads.ts).
    if (Number(st.size) < this.knownSize[i]!) return;
    if (st.mtimeNs !== this.foundMtime![i]) {
      throw new OutputChangedError(
        `${this.currentPath(i)} was modified since it was checked: its data can no longer be served as verified (check it again: tdl verify, or tdl seed)`,
      );
    }
  }

  /**
   * Read `length` bytes at `begin` of piece `index` to check them (a piece too big to hash in one
   * read): as readPieces does for whole pieces, bytes not on disk read as 0 and those that are not
   * padding are told to `absent` (offsets in the buffer).
   */
  readPart(
    index: number,
    begin: number,
    length: number,
    into?: Buffer,
    absent?: AbsentFn,
  ): Promise<Buffer> {
    return this.readRange(index, begin, length, into, false, absent);
  }

  private async readRange(
    index: number,
    begin: number,
    length: number,
    into: Buffer | undefined,
    verified: boolean,
    absent?: AbsentFn,
  ): Promise<Buffer> {
    if (this.closed) throw new DiskError('storage is closed');
    let spans;
    try {
      spans = this.layout.spans(index, begin, length);
    } catch (e) {
      throw new DiskError(`cannot read block ${index}+${begin}/${length}: ${(e as Error).message}`);
    }
    const buf =
      into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    const runs: Run[] = [];
    addPieceRuns(this.reads, runs, index, spans, -begin);
    await readRuns(this.reads, runs, buf, verified, absent);
    // Seeding: what is served must still be what was checked.
    if (verified && this.foundMtime) await this.servedAsFound(spans);
    return buf;
  }

  /** Does the file of this span hold its bytes (or is it padding, zeros by definition)? */
  private fileHolds(s: Span): boolean {
    if (this.isPadding(s.fileIndex)) return true;
    return (
      this.isSelected(s.fileIndex) &&
      this.exists[s.fileIndex] === 1 &&
      this.knownSize[s.fileIndex]! >= s.fileOffset + s.length
    );
  }

  /**
   * Pieces of `have` whose bytes for selected files are only in the parts file (the selection
   * grew since they were written): rewrite each (readPiece, then writeFromCopy) to put them in
   * place.
   */
  piecesToCopy(have: { has(i: number): boolean }): number[] {
    if (!this.parts) return [];
    return this.parts.pieces.filter(
      (p) =>
        have.has(p) &&
        (this.fromCopy.has(p) ||
          this.layout.spans(p).some((s) => this.isSelected(s.fileIndex) && !this.fileHolds(s))),
    );
  }

  /**
   * The copy of piece `index` in the parts file is right, and its selected files hold other
   * bytes in its place (a hole or older data of an earlier run, the file since selected again):
   * the piece is read from the copy alone, and piecesToCopy has it written to the files.
   */
  useCopy(index: number): void {
    if (this.parts?.has(index)) this.fromCopy.add(index);
  }

  /** Read the whole copy of piece `index` from the parts file; null when it is short or absent. */
  async readCopy(index: number): Promise<Buffer | null> {
    if (!this.parts?.has(index)) return null;
    const size = this.layout.pieceSize(index);
    const buf = Buffer.allocUnsafe(size);
    return (await this.parts.read(index, 0, size, buf, 0)) === size ? buf : null;
  }

  /** Wait for every write in flight. */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** Every file on disk (and clears the written-since marks). */
  allFiles(): number[] {
    this.durable.clearDirty();
    const all: number[] = [];
    for (let i = 0; i < this.fileCount; i++) if (this.exists[i]) all.push(i);
    return all;
  }

  /** Files written since the last call (their data may not be durable yet). */
  takeDirty(): number[] {
    return this.durable.takeDirty();
  }

  /**
   * Files whose contents were relied on without being known durable (the start-up check hashed
   * them): the next checkpoint syncs and stamps them as if written.
   */
  markDirty(indexes: Iterable<number>): void {
    for (const i of indexes) {
      if (!(i >= 0 && i < this.fileCount) || !this.onDisk(i)) continue;
      this.durable.markDirty(i);
    }
  }

  /**
   * Make the data already written to these files durable: one syncfs per file system when
   * SYNCFS_MIN_FILES or more need it (and syncfs works here), else one fdatasync each for those
   * not synced since their last write (a file synced when it left the pool is not opened again).
   */
  syncFiles(indexes: readonly number[]): Promise<void> {
    return this.durable.syncFiles(indexes);
  }

  /**
   * Start making what is written so far durable, and return at once: an fdatasync of each file
   * written since its last sync (at most one at a time per file, as any sync). Run while a
   * download goes on, it overlaps the disk's write-back with the network, so that the sync before
   * the complete checkpoint finds only the last few megabytes dirty (the kernel itself starts
   * write-back only after 30 s or a tenth of memory). Only for a few files: many go through
   * syncfs at the checkpoints. A failure is kept for the next checkpoint, as any sync's.
   */
  syncAhead(): void {
    if (this.closed || this.mode !== 'write') return;
    this.durable.syncAhead();
  }

  /**
   * Make everything written durable. The written-since marks stay: the next checkpoint still has
   * to stamp those files.
   */
  async sync(): Promise<void> {
    await this.flush();
    await this.durable.syncAll();
  }

  /**
   * Each file's stamp. Only files named in `fresh` are looked at again, and only when written
   * since their last stamp: a file tdl has not written keeps the stamp it had, so that a change
   * made by someone else shows as a mismatch on the next start.
   */
  async stamps(fresh: readonly number[] = []): Promise<(FileStamp | null)[]> {
    await this.stamp.refresh(fresh);
    return this.stamp.list();
  }

  /**
   * Like `stamps`, but the stamps as the resume file stores them (see StampTable): a checkpoint
   * of 100,000 files then builds no object per file. The table is storage's own: read it at once.
   */
  async stampTable(fresh: readonly number[] = []): Promise<StampTable> {
    await this.stamp.refresh(fresh);
    return this.stamp.table;
  }

  /** The first file no longer as `before` stamped it, in words, or null (see Stamps.firstChange). */
  firstChange(before: readonly (FileStamp | null)[]): Promise<string | null> {
    return this.stamp.firstChange(before);
  }

  /**
   * Check that each file (all when `indexes` is omitted) is still the one tdl uses, under the
   * name tdl expects, and no shorter than tdl made it. OutputChangedError names one that is
   * not. One lstat per file; the stamp it gives is kept for the next checkpoint.
   */
  checkIntact(indexes?: readonly number[]): Promise<void> {
    return this.stamp.checkIntact(indexes);
  }

  /**
   * The torrent is complete and verified: give every file its exact size (a file that was
   * longer is cut, and reported; with `keepLonger`, for `tdl seed`, which does not own the
   * data, it is only reported) and its final name, then make the names durable. Files never
   * written (empty ones, or all zeros) are created here. Renames go in one pass, after sizes.
   */
  async finalize(keepLonger = false): Promise<{ cut: string[] }> {
    await this.flush();
    const cut: string[] = [];
    const dirs = new Set<string>();
    for (let i = 0; i < this.fileCount; i++) {
      if (!this.stored(i)) continue;
      if (!this.exists[i]) {
        await this.createFinal(i);
        dirs.add(path.dirname(this.finalPath(i)));
        continue;
      }
      const length = this.layout.fileLength(i);
      try {
        if (!this.stamp.isFresh(i)) await this.stamp.look(i);
        const size = this.stamp.table.size(i);
        if (size > length && keepLonger) {
          cut.push(this.finalPath(i));
        } else if (size !== length) {
          if (size > length) cut.push(this.finalPath(i));
          await this.withFile(i, async (fd) => {
            await fdCall.truncate(fd, length);
            await fdCall.datasync(fd);
          });
          this.stamp.changed(i);
        }
      } catch (e) {
        throw toDiskError(e, `cannot set the size of ${this.currentPath(i)}`);
      }
    }
    const moving: number[] = [];
    /** The device of each folder a renamed file tdl had open went to. */
    const devOf = new Map<string, bigint>();
    for (let i = 0; i < this.fileCount; i++) {
      if (this.stored(i) && this.where[i] === AT_PART) moving.push(i);
    }
    const t0 = Date.now();
    let failure: DiskError | null = null;
    const moved: number[] = [];
    await eachLimited(moving, FS_PARALLEL, async (i) => {
      if (failure) return;
      const from = this.partPath(i);
      const to = this.finalPath(i);
      try {
        if (this.inline.on) {
          this.inline.run(() => renameSync(from, to));
          await this.inline.pace();
        } else {
          await rename(from, to);
        }
      } catch (e) {
        failure ??= toDiskError(e, `cannot rename ${from} to ${to}`);
        return;
      }
      moved.push(i);
      this.where[i] = AT_FINAL;
      const dir = path.dirname(to);
      dirs.add(dir);
      const dev = this.ident.dev(i);
      if (dev !== null) devOf.set(dir, dev);
    });
    if (failure) {
      // All or none: the files renamed already go back to their working names, so that the
      // output is not left half finished (a folder where a file goes: the next run finishes).
      for (const i of moved) {
        try {
          renameSync(this.finalPath(i), this.partPath(i));
          this.where[i] = AT_PART;
        } catch {
          // Stays under its final name: the next run finds it there, as any complete file.
        }
      }
      throw failure;
    }
    log('renamed %d files in %d ms', moving.length, Date.now() - t0);
    await syncFolders([...dirs], devOf, this.syncfs);
    log('finalized %d files under %s', this.fileCount, this.plan.root);
    return { cut };
  }

  /** Create a file that was never written (all zeros) under its final name, at its size. */
  private async createFinal(i: number): Promise<void> {
    const f = { path: this.finalPath(i), length: this.layout.fileLength(i) };
    let h: FileHandle | null = null;
    try {
      await this.folderFor(f.path);
      h = await open(
        f.path,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o644,
      );
      if (f.length > 0) {
        await h.truncate(f.length);
        await h.datasync();
      }
    } catch (e) {
      throw toDiskError(e, `cannot create ${f.path}`);
    } finally {
      await h?.close().catch(() => {});
    }
    this.where[i] = AT_FINAL;
    this.exists[i] = 1;
  }

  /** Pool figures: capacity, handles open now, most ever open, opens in total. */
  get openFiles(): { capacity: number; open: number; peak: number; opens: number } {
    const p = this.pool;
    return { capacity: p.capacity, open: p.size, peak: p.peak, opens: p.opens };
  }

  /**
   * The data is about to be removed (a stream's working copy, once streamed): nothing written so
   * far needs to be durable, and closing syncs nothing.
   */
  discardData(): void {
    this.durable.discard();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush();
    await this.pool.close();
    await this.parts?.close();
    if (this.syncHelper) {
      this.syncHelper = false;
      stopSyncHelper();
    }
  }

  get root(): string {
    return this.plan.root;
  }

  /**
   * Removes the folders this run created at open that are still empty, deepest first: a run
   * that ends before it has written anything (its port taken, say) leaves no trace.
   */
  async removeMadeFolders(): Promise<void> {
    for (const d of this.made.reverse()) await rmdir(d).catch(() => {});
    this.made.length = 0;
  }
}

/** mkdir; true when it created the folder, false when one was there. */
async function mkdirOrFail(dir: string, recursive: boolean): Promise<boolean> {
  try {
    if (recursive) return (await makeFolders(dir)) !== undefined;
    await mkdir(dir);
    return true;
  } catch (e) {
    if (!recursive && (e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw toDiskError(e, `cannot create folder ${dir}`);
  }
}
