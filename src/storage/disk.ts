/**
 * File I/O for verified pieces. Files are created (sparse, at their final size) when the download
 * starts; a verified piece is written straight to its place, split across files where it crosses
 * a boundary. Nothing but whole verified pieces is ever written.
 */
import { constants } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import createDebug from 'debug';
import { DiskError } from '../errors.js';
import type { Layout } from './layout.js';
import type { OutputPlan } from './output.js';

const log = createDebug('tdl:storage');

export class DiskStorage {
  private handles: (FileHandle | null)[];
  private pending = new Set<Promise<void>>();
  private closed = false;

  private constructor(
    private readonly plan: OutputPlan,
    private readonly layout: Layout,
  ) {
    this.handles = plan.files.map(() => null);
  }

  /** Create folders and files (existing files are kept, and grown to size if shorter). */
  static async open(plan: OutputPlan, layout: Layout): Promise<DiskStorage> {
    const s = new DiskStorage(plan, layout);
    try {
      await mkdir(plan.parent, { recursive: true });
      for (const d of plan.dirs) await mkdir(d, { recursive: true });
      for (let i = 0; i < plan.files.length; i++) {
        const f = plan.files[i]!;
        const h = await open(
          f.path,
          constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW,
          0o644,
        );
        s.handles[i] = h;
        const st = await h.stat();
        if (st.size !== f.length) await h.truncate(f.length);
      }
    } catch (e) {
      await s.close().catch(() => {});
      throw toDiskError(e, 'cannot create output');
    }
    log('opened %d files under %s', plan.files.length, plan.root);
    return s;
  }

  /** Write a whole verified piece. Concurrent writes to distinct pieces are fine. */
  writePiece(index: number, data: Buffer): Promise<void> {
    if (this.closed) return Promise.reject(new DiskError('storage is closed'));
    const p = this.doWrite(index, data);
    this.pending.add(p);
    void p.then(
      () => this.pending.delete(p),
      () => this.pending.delete(p),
    );
    return p;
  }

  private async doWrite(index: number, data: Buffer): Promise<void> {
    try {
      for (const s of this.layout.spans(index)) {
        const h = this.handles[s.fileIndex]!;
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
      }
    } catch (e) {
      throw toDiskError(e, `cannot write piece ${index}`);
    }
  }

  /** Read a piece back from disk (for checking existing data). */
  async readPiece(index: number, into?: Buffer): Promise<Buffer> {
    const size = this.layout.pieceSize(index);
    const buf = into && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafe(size);
    try {
      for (const s of this.layout.spans(index)) {
        const h = this.handles[s.fileIndex]!;
        let done = 0;
        while (done < s.length) {
          const { bytesRead } = await h.read(
            buf,
            s.pieceOffset + done,
            s.length - done,
            s.fileOffset + done,
          );
          if (bytesRead <= 0) {
            buf.fill(0, s.pieceOffset + done, s.pieceOffset + s.length);
            break;
          }
          done += bytesRead;
        }
      }
    } catch (e) {
      throw toDiskError(e, `cannot read piece ${index}`);
    }
    return buf;
  }

  /** Wait for every write in flight. */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  async sync(): Promise<void> {
    await this.flush();
    try {
      await Promise.all(this.handles.map((h) => h?.datasync()));
    } catch (e) {
      throw toDiskError(e, 'cannot sync output');
    }
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

function toDiskError(e: unknown, what: string): DiskError {
  if (e instanceof DiskError) return e;
  const err = e as NodeJS.ErrnoException;
  const detail =
    err.code === 'ENOSPC'
      ? 'no space left on device'
      : err.code === 'EACCES' || err.code === 'EPERM'
        ? `permission denied${err.path ? ` (${err.path})` : ''}`
        : err.code === 'ELOOP'
          ? `refusing to follow a symlink${err.path ? ` (${err.path})` : ''}`
          : (err.message ?? String(e));
  return new DiskError(`${what}: ${detail}`, { cause: e });
}
