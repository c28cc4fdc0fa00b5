/**
 * Keeps the resume file of a running download.
 *
 * - Before a piece's first byte is written, its index is appended to the journal (`intent`).
 * - Once the piece's data is written, it is `markWritten`, but it is only *recorded* as present
 *   by the next `checkpoint`, which first syncs the files written since the previous one, then
 *   stamps them (size, mtime, inode) and replaces the resume file atomically: temp file, fsync,
 *   rename, fsync of the folder. Pieces whose write started but is not covered by the checkpoint
 *   are carried over into the new journal.
 *
 * So a crash at any point leaves a resume file that never claims data that is not durably on
 * disk, and whose journal names every piece that may have been written since.
 */
import { constants } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { logger } from '../log.js';
import { Bitfield } from '../wire/bitfield.js';
import { DiskError } from '../errors.js';
import type { DiskStorage } from './disk.js';
import { syncDir } from './durability.js';
import { toDiskError } from './fs-util.js';
import { withSuffix } from './names.js';
import { encodeJournalEntry, encodeResume } from './resume.js';

const log = logger('tdl:resume');

/**
 * Where a checkpoint of the resume file `file` is written before it is renamed over it (a name
 * of at most 255 bytes, as the resume file's own: see withSuffix).
 */
export function resumeTempPath(file: string): string {
  return withSuffix(file, '.tmp');
}

/** Remove a resume file that no writer holds, and its temporary copy (best effort). */
export async function removeResumeFiles(file: string): Promise<void> {
  await rm(file, { force: true }).catch(() => {});
  await rm(resumeTempPath(file), { force: true }).catch(() => {});
}

/** Journal entries of pieces starting within this window are written together. */
export const JOURNAL_BATCH_MS = 5;

export interface CheckpointTorrent {
  infoHash: Buffer;
  pieceLength: number;
  length: number;
  pieceCount: number;
}

export class ResumeWriter {
  /** Pieces whose data has been written (whether synced yet or not). */
  private readonly written: Bitfield;
  /** Pieces whose write started and that no checkpoint records yet. */
  private started = new Set<number>();
  private handle: FileHandle | null = null;
  private journalPos = 0;
  private pendingIntents: number[] = [];
  private intentFlush: Promise<void> | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private running = 0;
  private closed = false;
  /** Something was written or started since the last checkpoint began. */
  private changed = true;
  /** Checkpoints written (for logs and tests). */
  count = 0;

  constructor(
    readonly file: string,
    private readonly torrent: CheckpointTorrent,
    private readonly storage: DiskStorage,
    present: Bitfield,
  ) {
    this.written = new Bitfield(present.size, present.toBuffer());
  }

  get tempFile(): string {
    return resumeTempPath(this.file);
  }

  /** True while a checkpoint is being written. */
  get busy(): boolean {
    return this.running > 0;
  }

  /** True when a checkpoint now would record something new. */
  get stale(): boolean {
    return this.changed;
  }

  /**
   * Log that the piece is about to be written; resolves once its journal entry is. Never fails:
   * the journal is only a hint. Entries of pieces that start within JOURNAL_BATCH_MS go out in
   * one write (a write per piece cost a system call and a thread-pool round trip each).
   */
  intent(index: number): Promise<void> {
    this.started.add(index);
    this.changed = true;
    if (!this.handle) return Promise.resolve();
    this.pendingIntents.push(index);
    this.intentFlush ??= new Promise<void>((resolve) => {
      setTimeout(() => {
        this.intentFlush = null;
        void this.flushIntents().then(resolve);
      }, JOURNAL_BATCH_MS);
    });
    return this.intentFlush;
  }

  private async flushIntents(): Promise<void> {
    const indexes = this.pendingIntents;
    this.pendingIntents = [];
    const h = this.handle;
    if (!h || indexes.length === 0) return;
    const buf = Buffer.concat(indexes.map((i) => encodeJournalEntry(i)));
    const pos = this.journalPos;
    this.journalPos += buf.length;
    try {
      await h.write(buf, 0, buf.length, pos);
    } catch (e) {
      log('journal entries for %d pieces not written: %s', indexes.length, (e as Error).message);
    }
  }

  markWritten(index: number): void {
    this.written.set(index);
    this.changed = true;
  }

  /**
   * Write a checkpoint now (after any already under way). DiskError when it could not be.
   * `last` only labels the log line (the final checkpoint of a run).
   */
  checkpoint(last = false): Promise<void> {
    const run = this.chain.then(() => this.write(last));
    this.chain = run.catch(() => {});
    return run;
  }

  private async write(last: boolean): Promise<void> {
    if (this.closed) return;
    this.running++;
    this.changed = false;
    const t0 = Date.now();
    try {
      const have = new Bitfield(this.written.size, this.written.toBuffer());
      // Files written since the last checkpoint; the first one also covers files whose data the
      // start-up check found by hashing (an earlier run may have written it without syncing).
      const dirty = this.storage.takeDirty();
      const carried = [...this.started].filter((i) => !have.has(i));
      let buf: Buffer;
      try {
        // Stamps first (size, mtime, inode: a sync changes none of them), so that every file has
        // a known device for syncfs. A file stamped on its handle when it left the pool is not
        // looked up again; any other is lstat'ed by name, and one replaced or truncated by
        // someone else is not stamped as ours. The table is live: it is encoded at once, before
        // the sync, during which later writes may stamp files again.
        const files = await this.storage.stampTable(dirty);
        buf = encodeResume(
          {
            infoHash: this.torrent.infoHash,
            pieceLength: this.torrent.pieceLength,
            totalLength: this.torrent.length,
            pieceCount: this.torrent.pieceCount,
            files,
            have,
          },
          carried,
        );
        await this.storage.syncFiles(dirty);
      } catch (e) {
        // The next checkpoint must still stamp and sync them.
        this.storage.markDirty(dirty);
        throw e;
      }
      const h = await this.writeTemp(buf);
      try {
        await rename(this.tempFile, this.file);
      } catch (e) {
        await h.close().catch(() => {});
        await rm(this.tempFile, { force: true }).catch(() => {});
        throw toDiskError(e, `cannot write the resume file ${this.file}`);
      }
      await syncDir(path.dirname(this.file));
      // Switch the journal to the new file. Writes that started while this checkpoint was being
      // written logged their intent in the old file: carry them over.
      const old = this.handle;
      const inBuf = new Set(carried);
      const late = [...this.started].filter((i) => !have.has(i) && !inBuf.has(i));
      this.started = new Set([...carried, ...late]);
      this.handle = h;
      this.journalPos = buf.length;
      await Promise.all(late.map((i) => this.intent(i)));
      await old?.close().catch(() => {});
      this.count++;
      log(
        'checkpoint %d: %d/%d pieces, %d files synced, %d in journal, %s, %d ms',
        this.count,
        have.count,
        have.size,
        dirty.length,
        this.started.size,
        last ? 'last' : 'running',
        Date.now() - t0,
      );
    } catch (e) {
      this.changed = true;
      throw e;
    } finally {
      this.running--;
    }
  }

  private async writeTemp(buf: Buffer): Promise<FileHandle> {
    let h: FileHandle;
    try {
      // O_NONBLOCK: a FIFO left at this name fails its first write or its sync instead of
      // blocking a thread for good once its buffer is full (a regular file is not affected).
      h = await open(
        this.tempFile,
        constants.O_RDWR |
          constants.O_CREAT |
          constants.O_TRUNC |
          constants.O_NOFOLLOW |
          constants.O_NONBLOCK,
        0o644,
      );
    } catch (e) {
      throw toDiskError(e, `cannot write the resume file ${this.file}`);
    }
    try {
      let done = 0;
      while (done < buf.length) {
        const { bytesWritten } = await h.write(buf, done, buf.length - done, done);
        if (bytesWritten <= 0) throw new DiskError('short write');
        done += bytesWritten;
      }
      await h.sync();
      return h;
    } catch (e) {
      await h.close().catch(() => {});
      await rm(this.tempFile, { force: true }).catch(() => {});
      throw toDiskError(e, `cannot write the resume file ${this.file}`);
    }
  }

  /** Wait for checkpoints under way. */
  async idle(): Promise<void> {
    await this.chain;
  }

  /** Stop: no more checkpoints. The file stays on disk. */
  async close(): Promise<void> {
    await this.idle();
    this.closed = true;
    const h = this.handle;
    this.handle = null;
    await h?.close().catch(() => {});
  }

  /** The download is complete and final: the resume file is no longer needed. */
  async remove(): Promise<void> {
    await this.close();
    try {
      await rm(this.file, { force: true });
      await rm(this.tempFile, { force: true });
    } catch (e) {
      throw toDiskError(e, `cannot remove the resume file ${this.file}`);
    }
    await syncDir(path.dirname(this.file));
  }
}
