/**
 * File I/O for verified pieces.
 *
 * In `write` mode every file of the torrent is opened (or created, sparse, at its final size)
 * under its working name `<name>.part`; a file already present under its final name is used in
 * place and moved to its working name just before the first byte is written to it. A verified
 * piece is written straight to its place, split across files where it crosses a boundary.
 * Nothing but whole verified pieces is ever written, and nothing is ever shrunk or deleted before
 * the whole torrent is verified: `finalize()` then gives every file its exact size and its final
 * name.
 *
 * In `read` mode (`tdl verify`) files are opened read-only under either name and nothing is
 * created or changed; a missing file reads as zeros.
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import createDebug from 'debug';
import { DiskError } from '../errors.js';
import type { Layout } from './layout.js';
import { partPaths } from './names.js';
import type { OutputPlan } from './output.js';

const log = createDebug('tdl:storage');

export type StorageMode = 'write' | 'read';

export interface StoredFile {
  /** Final path. */
  readonly path: string;
  /** Working path while the torrent is incomplete. */
  readonly partPath: string;
  readonly length: number;
  readonly offset: number;
  /** Where the file is on disk now; null when it is not (read mode only). */
  current: string | null;
  /** The file was on disk before this run, under either name. */
  existed: boolean;
  /** Both names existed when opened: the working file is used, the final one is replaced at the end. */
  shadowed: boolean;
}

/** What identifies a file's contents between runs: size, modification time and inode. */
export interface FileStamp {
  size: number;
  mtimeNs: bigint;
  ino: bigint;
}

/** An output file was removed, replaced or truncated by someone else while tdl used it. */
export class OutputChangedError extends DiskError {}

export class DiskStorage {
  readonly files: StoredFile[];
  private handles: (FileHandle | null)[];
  /** Smallest size each file must have: its size when opened, grown by our writes. */
  private readonly knownSize: number[];
  private readonly renames: (Promise<void> | null)[];
  private readonly stampCache: (FileStamp | null)[];
  private dirty = new Set<number>();
  private pending = new Set<Promise<void>>();
  private beforeWrite: ((index: number) => Promise<void>) | null = null;
  private closed = false;

  private constructor(
    private readonly plan: OutputPlan,
    private readonly layout: Layout,
    readonly mode: StorageMode,
  ) {
    const parts = partPaths(plan);
    this.files = plan.files.map((f, i) => ({
      path: f.path,
      partPath: parts[i]!,
      length: f.length,
      offset: f.offset,
      current: null,
      existed: false,
      shadowed: false,
    }));
    this.handles = plan.files.map(() => null);
    this.knownSize = plan.files.map(() => 0);
    this.renames = plan.files.map(() => null);
    this.stampCache = plan.files.map(() => null);
  }

  /**
   * Open the output. `write`: create folders, and open each file under its working name, else
   * under its final name, else create it under its working name. `read`: open what exists.
   */
  static async open(
    plan: OutputPlan,
    layout: Layout,
    opts: { mode?: StorageMode } = {},
  ): Promise<DiskStorage> {
    const s = new DiskStorage(plan, layout, opts.mode ?? 'write');
    try {
      if (s.mode === 'write') await s.openForWrite();
      else await s.openForRead();
    } catch (e) {
      await s.close().catch(() => {});
      throw toDiskError(e, 'cannot open output');
    }
    log('opened %d files under %s (%s)', plan.files.length, plan.root, s.mode);
    return s;
  }

  private async openForWrite(): Promise<void> {
    await mkdirOrFail(this.plan.parent);
    for (const d of this.plan.dirs) await mkdirOrFail(d);
    const RW = constants.O_RDWR | constants.O_NOFOLLOW;
    for (let i = 0; i < this.files.length; i++) {
      const f = this.files[i]!;
      let h = await openIfExists(f.partPath, RW);
      if (h) {
        f.current = f.partPath;
        f.existed = true;
        f.shadowed = (await lstatOrNull(f.path)) !== null;
      } else {
        h = await openIfExists(f.path, RW);
        if (h) {
          f.current = f.path;
          f.existed = true;
        }
      }
      if (!h) {
        try {
          h = await open(f.partPath, RW | constants.O_CREAT | constants.O_EXCL, 0o644);
        } catch (e) {
          throw toDiskError(e, `cannot create ${f.partPath}`);
        }
        f.current = f.partPath;
        this.handles[i] = h;
        await h.truncate(f.length);
      } else {
        this.handles[i] = h;
      }
      const st = await h.stat();
      if (!st.isFile()) throw new DiskError(`${f.current} is not a regular file`);
      this.knownSize[i] = st.size;
    }
  }

  private async openForRead(): Promise<void> {
    const RO = constants.O_RDONLY | constants.O_NOFOLLOW;
    for (let i = 0; i < this.files.length; i++) {
      const f = this.files[i]!;
      let h = await openIfExists(f.partPath, RO);
      if (h) {
        f.current = f.partPath;
      } else {
        h = await openIfExists(f.path, RO);
        if (h) f.current = f.path;
      }
      if (!h) continue;
      this.handles[i] = h;
      f.existed = true;
      const st = await h.stat();
      if (!st.isFile()) throw new DiskError(`${f.current} is not a regular file`);
      this.knownSize[i] = st.size;
    }
  }

  /** Called (and awaited) before each piece's first byte is written: the resume journal's hook. */
  setBeforeWrite(hook: ((index: number) => Promise<void>) | null): void {
    this.beforeWrite = hook;
  }

  /** Write a whole verified piece. Concurrent writes to distinct pieces are fine. */
  writePiece(index: number, data: Buffer): Promise<void> {
    if (this.closed) return Promise.reject(new DiskError('storage is closed'));
    if (this.mode !== 'write') return Promise.reject(new DiskError('storage is read-only'));
    const p = this.doWrite(index, data);
    this.pending.add(p);
    void p.then(
      () => this.pending.delete(p),
      () => this.pending.delete(p),
    );
    return p;
  }

  private async doWrite(index: number, data: Buffer): Promise<void> {
    if (this.beforeWrite) await this.beforeWrite(index);
    for (const s of this.layout.spans(index)) {
      const fi = s.fileIndex;
      await this.ensureWorkingName(fi);
      const f = this.files[fi]!;
      const h = this.handles[fi];
      if (!h) throw new DiskError(`cannot write piece ${index}: ${f.current} is closed`);
      try {
        // A file that shrank under us was truncated by someone else: writing on would regrow it
        // and hide the hole.
        const st = await h.stat();
        if (st.size < this.knownSize[fi]!) {
          throw new OutputChangedError(
            `${f.current} was truncated during the download (${st.size} bytes, expected ${this.knownSize[fi]})`,
          );
        }
        let done = 0;
        while (done < s.length) {
          const { bytesWritten } = await h.write(
            data,
            s.pieceOffset + done,
            s.length - done,
            s.fileOffset + done,
          );
          if (bytesWritten <= 0) throw new Error('short write');
          done += bytesWritten;
        }
      } catch (e) {
        throw toDiskError(e, `cannot write piece ${index} to ${f.current}`);
      }
      this.knownSize[fi] = Math.max(this.knownSize[fi]!, s.fileOffset + s.length);
      this.dirty.add(fi);
    }
  }

  /** A file still under its final name is moved to its working name before it is changed. */
  private ensureWorkingName(fi: number): Promise<void> {
    const f = this.files[fi]!;
    if (f.current === f.partPath) return Promise.resolve();
    let r = this.renames[fi];
    if (!r) {
      r = (async () => {
        try {
          await rename(f.path, f.partPath);
        } catch (e) {
          throw toDiskError(e, `cannot rename ${f.path} to ${f.partPath}`);
        }
        f.current = f.partPath;
        log('moved %s to its working name', f.path);
      })();
      this.renames[fi] = r;
      // A failed rename is retried by the next write.
      void r.catch(() => {
        this.renames[fi] = null;
      });
    }
    return r;
  }

  /** A block of a verified piece, to serve to a peer. */
  async readBlock(index: number, begin: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    for (const s of this.layout.spans(index, begin, length)) {
      const h = this.handles[s.fileIndex];
      const at = s.pieceOffset - begin;
      if (!h) {
        buf.fill(0, at, at + s.length);
        continue;
      }
      const { bytesRead } = await h.read(buf, at, s.length, s.fileOffset);
      if (bytesRead < s.length) buf.fill(0, at + bytesRead, at + s.length);
    }
    return buf;
  }

  /** Read a piece back from disk. Bytes past the end of a file, or of a missing file, read as 0. */
  readPiece(index: number, into?: Buffer): Promise<Buffer> {
    return this.readPieces(index, index, into);
  }

  /**
   * Read the consecutive pieces `first..last` into one buffer, one read per file run. Bytes past
   * the end of a file, or of a missing file, read as 0.
   */
  async readPieces(first: number, last: number, into?: Buffer): Promise<Buffer> {
    const start = this.layout.pieceOffset(first);
    const size = this.layout.pieceOffset(last) + this.layout.pieceSize(last) - start;
    const buf = into && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafe(size);
    const runs: { fileIndex: number; fileOffset: number; at: number; length: number }[] = [];
    for (let p = first; p <= last; p++) {
      const base = this.layout.pieceOffset(p) - start;
      for (const s of this.layout.spans(p)) {
        const at = base + s.pieceOffset;
        const r = runs[runs.length - 1];
        if (r && r.fileIndex === s.fileIndex && r.at + r.length === at) r.length += s.length;
        else runs.push({ fileIndex: s.fileIndex, fileOffset: s.fileOffset, at, length: s.length });
      }
    }
    for (const r of runs) {
      const h = this.handles[r.fileIndex];
      if (!h) {
        buf.fill(0, r.at, r.at + r.length);
        continue;
      }
      try {
        let done = 0;
        while (done < r.length) {
          const { bytesRead } = await h.read(
            buf,
            r.at + done,
            r.length - done,
            r.fileOffset + done,
          );
          if (bytesRead <= 0) {
            buf.fill(0, r.at + done, r.at + r.length);
            break;
          }
          done += bytesRead;
        }
      } catch (e) {
        const where = this.files[r.fileIndex]!.current;
        throw toDiskError(e, `cannot read ${where}`);
      }
    }
    return buf;
  }

  /** Wait for every write in flight. */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** Every file index (and clears the written-since marks). */
  allFiles(): number[] {
    this.dirty.clear();
    return this.files.map((_, i) => i);
  }

  /** Files written since the last call (their data may not be durable yet). */
  takeDirty(): number[] {
    const d = [...this.dirty];
    this.dirty.clear();
    return d;
  }

  /** Make the data already written to these files durable. */
  async syncFiles(indexes: readonly number[]): Promise<void> {
    try {
      await Promise.all(indexes.map((i) => this.handles[i]?.datasync()));
    } catch (e) {
      for (const i of indexes) this.dirty.add(i);
      throw toDiskError(e, 'cannot sync output');
    }
  }

  /**
   * Make everything written durable. The written-since marks stay: the next checkpoint still has
   * to stamp those files.
   */
  async sync(): Promise<void> {
    await this.flush();
    await this.syncFiles(this.handles.map((_, i) => i));
  }

  /**
   * Each file's stamp as seen through its open handle. Only files named in `fresh` (or never
   * stamped) are asked again: a file tdl has not written keeps the stamp it had, so that a change
   * made by someone else shows as a mismatch on the next start.
   */
  async stamps(fresh: readonly number[] = []): Promise<(FileStamp | null)[]> {
    const again = new Set(fresh);
    await Promise.all(
      this.handles.map(async (h, i) => {
        if (!h) {
          this.stampCache[i] = null;
          return;
        }
        if (this.stampCache[i] && !again.has(i)) return;
        try {
          const st = await h.stat({ bigint: true });
          this.stampCache[i] = { size: Number(st.size), mtimeNs: st.mtimeNs, ino: st.ino };
        } catch (e) {
          throw toDiskError(e, `cannot read ${this.files[i]!.current}`);
        }
      }),
    );
    return [...this.stampCache];
  }

  /**
   * Check that each file (all when `indexes` is omitted) is still the one tdl has open, under the
   * name tdl expects, and no shorter than tdl made it. OutputChangedError names the first that
   * is not.
   */
  async checkIntact(indexes?: readonly number[]): Promise<void> {
    const list = indexes ?? this.files.map((_, i) => i);
    for (const i of list) {
      const h = this.handles[i];
      const f = this.files[i]!;
      if (!h || !f.current) continue;
      const ours = await h.stat({ bigint: true }).catch((e: unknown) => {
        throw toDiskError(e, `cannot read ${f.current}`);
      });
      const there = await lstatOrNull(f.current, true);
      if (!there) throw new OutputChangedError(`${f.current} was removed during the download`);
      if (there.ino !== ours.ino || there.dev !== ours.dev) {
        throw new OutputChangedError(
          `${f.current} was replaced by another file during the download`,
        );
      }
      if (Number(ours.size) < this.knownSize[i]!) {
        throw new OutputChangedError(
          `${f.current} was truncated during the download (${ours.size} bytes, expected ${this.knownSize[i]})`,
        );
      }
    }
  }

  /**
   * The torrent is complete and verified: give every file its exact size (a file that was
   * longer is cut, and reported) and its final name, then make the names durable.
   */
  async finalize(): Promise<{ cut: string[] }> {
    const cut: string[] = [];
    for (let i = 0; i < this.files.length; i++) {
      const f = this.files[i]!;
      const h = this.handles[i];
      if (!h || !f.current) continue;
      try {
        const st = await h.stat();
        if (st.size !== f.length) {
          if (st.size > f.length) cut.push(f.path);
          await h.truncate(f.length);
          await h.datasync();
        }
      } catch (e) {
        throw toDiskError(e, `cannot set the size of ${f.current}`);
      }
    }
    const dirs = new Set<string>();
    for (const f of this.files) {
      if (f.current && f.current !== f.path) {
        try {
          await rename(f.current, f.path);
        } catch (e) {
          throw toDiskError(e, `cannot rename ${f.current} to ${f.path}`);
        }
        f.current = f.path;
        dirs.add(path.dirname(f.path));
      }
    }
    for (const d of dirs) await syncDir(d);
    log('finalized %d files under %s', this.files.length, this.plan.root);
    return { cut };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush();
    const hs = this.handles;
    this.handles = hs.map(() => null);
    await Promise.allSettled(hs.map((h) => h?.close()));
  }

  get root(): string {
    return this.plan.root;
  }
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

async function mkdirOrFail(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw toDiskError(e, `cannot create folder ${dir}`);
  }
}

async function openIfExists(p: string, flags: number): Promise<FileHandle | null> {
  try {
    return await open(p, flags);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw toDiskError(e, `cannot open ${p}`);
  }
}

async function lstatOrNull(p: string, bigint: true): Promise<import('node:fs').BigIntStats | null>;
async function lstatOrNull(p: string): Promise<import('node:fs').Stats | null>;
async function lstatOrNull(p: string, bigint?: boolean) {
  try {
    return bigint ? await lstat(p, { bigint: true }) : await lstat(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw toDiskError(e, `cannot read ${p}`);
  }
}

export function toDiskError(e: unknown, what: string): DiskError {
  if (e instanceof DiskError) return e;
  const err = e as NodeJS.ErrnoException;
  const detail =
    err.code === 'ENOSPC'
      ? 'no space left on device'
      : err.code === 'EDQUOT'
        ? 'disk quota exceeded'
        : err.code === 'EROFS'
          ? 'read-only file system'
          : err.code === 'EACCES' || err.code === 'EPERM'
            ? `permission denied${err.path ? ` (${err.path})` : ''}`
            : err.code === 'ELOOP'
              ? `refusing to follow a symlink${err.path ? ` (${err.path})` : ''}`
              : err.code === 'EISDIR'
                ? 'is a folder'
                : (err.message ?? String(e));
  return new DiskError(`${what}: ${detail}`, { cause: e });
}
