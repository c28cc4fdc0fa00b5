/**
 * The side file of a partial selection, `<root>.tdl-parts`, beside the resume file.
 *
 * A piece that holds bytes of a selected file and of a file that is not selected (a boundary
 * piece) is still fetched and verified whole, but the unselected file is never created: the
 * piece's selected bytes go to their files and a copy of the whole verified piece is appended
 * here. Reading the piece back (start-up check, `tdl verify`, serving it to peers) takes the
 * bytes of unselected files from this copy, so the piece stays verifiable and servable, and a
 * later run that selects more files finds those bytes here instead of fetching them again.
 *
 * Format: the 8 bytes `TDLPART1` and the torrent's 20-byte info hash (a file of another
 * torrent is started afresh; the hash also marks the output folder as this torrent's, see
 * output.ts), then records `u32 piece index, u32 length, the piece's bytes`
 * (big-endian), appended and fdatasynced one at a time before the piece is recorded anywhere
 * else. On open the records are scanned (headers only; nothing is allocated per record but an
 * index entry): a record whose index is out of range, whose length is not that piece's size, or
 * that runs past the end of the file ends the scan, and the next append goes over whatever
 * follows. Records are hints, never trusted: every piece read from here is hashed before use,
 * and a record whose piece fails is forgotten (`forget`): the piece is fetched again and its
 * new copy written over the bad one (a later record of an index would win the scan too).
 * Size: at most two pieces per run of selected files, plus what earlier selections left.
 */
import { constants } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { logger } from '../log.js';
import { DiskError } from '../errors.js';
import { OPEN_READ, readHeader, toDiskError } from './fs-util.js';
import type { Layout } from './layout.js';
import type { OutputPlan } from './output.js';
import { withSuffix } from './names.js';

const log = logger('tdl:storage');

export const PARTS_SUFFIX = '.tdl-parts';
const MAGIC = Buffer.from('TDLPART1', 'latin1');
const HEADER = 8;
/** Magic and info hash. */
const FILE_HEADER = MAGIC.length + 20;

/** Where the side file of this output lives: beside the root, like the resume file. */
export function partsPath(plan: OutputPlan): string {
  return withSuffix(plan.root, PARTS_SUFFIX);
}

export class PartsFile {
  /** Piece index → position of its bytes in the file. */
  private readonly where = new Map<number, number>();
  /** Records forgotten (their piece failed its hash): the next copy of the piece goes there. */
  private readonly stale = new Map<number, number>();
  private end = FILE_HEADER;
  private handle: FileHandle | null = null;
  private fresh = false;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly file: string,
    private readonly infoHash: Buffer,
    private readonly writable: boolean,
  ) {}

  /**
   * Open the side file: its records are indexed; a missing file is empty (in write mode it is
   * created by the first record). A file that is not one of ours is a DiskError in write mode
   * (tdl will not write over it) and empty in read mode.
   */
  static async open(
    file: string,
    layout: Layout,
    infoHash: Buffer,
    writable: boolean,
  ): Promise<PartsFile> {
    const pf = new PartsFile(file, infoHash, writable);
    let h: FileHandle;
    try {
      // Never waiting on a FIFO (see OPEN_READ): the fstat below refuses it.
      h = await open(
        file,
        writable ? constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK : OPEN_READ,
      );
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        pf.fresh = true;
        return pf;
      }
      throw toDiskError(e, `cannot open ${file}`);
    }
    pf.handle = h;
    try {
      const st = await h.stat();
      if (!st.isFile()) throw new DiskError(`${file} is not a regular file`);
      const top = Buffer.alloc(FILE_HEADER);
      const n = await readAt(h, top, 0);
      const ours = top.subarray(0, Math.min(n, MAGIC.length)).equals(MAGIC.subarray(0, n));
      if (n < FILE_HEADER || !ours) {
        // Ours, torn while its header was written (or empty), is started afresh; anything else
        // is someone's file, never written over.
        if (!ours && writable) {
          throw new DiskError(`${file} is not a tdl parts file: move it away`);
        }
        pf.fresh = true;
        return pf;
      }
      if (!top.subarray(MAGIC.length).equals(infoHash)) {
        log('parts file %s is of another torrent: started afresh', file);
        pf.fresh = true;
        return pf;
      }
      const head = Buffer.alloc(HEADER);
      let pos = FILE_HEADER;
      while (pos + HEADER <= st.size) {
        if ((await readAt(h, head, pos)) < HEADER) break;
        const index = head.readUInt32BE(0);
        const length = head.readUInt32BE(4);
        if (index >= layout.pieceCount || length !== layout.pieceSize(index)) break;
        if (pos + HEADER + length > st.size) break;
        pf.where.set(index, pos + HEADER);
        pos += HEADER + length;
      }
      pf.end = pos;
      log('parts file %s: %d pieces', file, pf.where.size);
    } catch (e) {
      await h.close().catch(() => {});
      pf.handle = null;
      throw toDiskError(e, `cannot read ${file}`);
    }
    return pf;
  }

  has(index: number): boolean {
    return this.where.has(index);
  }

  get pieces(): number[] {
    return [...this.where.keys()].sort((a, b) => a - b);
  }

  get size(): number {
    return this.where.size;
  }

  /**
   * Piece `index` failed its hash with this copy: it is read from here no more (its bytes would
   * be served, and a run would fetch it again every time), and its next copy goes in its place.
   */
  forget(index: number): void {
    const at = this.where.get(index);
    if (at === undefined) return;
    this.where.delete(index);
    this.stale.set(index, at);
    log('parts file %s: the copy of piece %d is bad, forgotten', this.file, index);
  }

  /**
   * Copy `length` bytes at `pieceOffset` of the stored piece into `into` at `at`; returns how
   * many were there (the rest, cut off since the file was opened, reads as zeros).
   */
  async read(
    index: number,
    pieceOffset: number,
    length: number,
    into: Buffer,
    at: number,
  ): Promise<number> {
    const base = this.where.get(index);
    if (base === undefined || !this.handle)
      throw new DiskError(`piece ${index} is not in ${this.file}`);
    try {
      const n = await readAt(this.handle, into.subarray(at, at + length), base + pieceOffset);
      if (n < length) into.fill(0, at + n, at + length);
      return n;
    } catch (e) {
      throw toDiskError(e, `cannot read ${this.file}`);
    }
  }

  /**
   * Store a verified piece and make it durable: appended, or written over the piece's record
   * when it has one (a bad copy forgotten, or a good one rewritten with the same bytes).
   */
  write(index: number, data: Buffer): Promise<void> {
    if (!this.writable) return Promise.reject(new DiskError(`${this.file} is read-only`));
    const job = this.queue.then(() => this.append(index, data));
    this.queue = job.catch(() => {});
    return job;
  }

  private async append(index: number, data: Buffer): Promise<void> {
    if (this.closed) throw new DiskError('storage is closed');
    const over = this.where.get(index) ?? this.stale.get(index);
    try {
      if (over !== undefined && this.handle) {
        // Same index, same length (the scan checked it): the record's header stands as it is.
        await writeAll(this.handle, data, over);
        await this.handle.datasync();
        this.stale.delete(index);
        this.where.set(index, over);
        return;
      }
      if (!this.handle) {
        this.handle = await open(
          this.file,
          constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW,
          0o644,
        );
      }
      const h = this.handle;
      await this.start(h);
      const head = Buffer.alloc(HEADER);
      head.writeUInt32BE(index, 0);
      head.writeUInt32BE(data.length, 4);
      // Whatever followed the last good record (a torn append) is cut off first.
      await h.truncate(this.end);
      await writeAll(h, head, this.end);
      await writeAll(h, data, this.end + HEADER);
      await h.datasync();
      this.where.set(index, this.end + HEADER);
      this.end += HEADER + data.length;
    } catch (e) {
      throw toDiskError(e, `cannot write piece ${index} to ${this.file}`);
    }
  }

  /** Write the header of a fresh file (a partial selection marks its output with it). */
  create(): Promise<void> {
    const job = this.queue.then(async () => {
      try {
        this.handle ??= await open(
          this.file,
          constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW,
          0o644,
        );
        await this.start(this.handle);
      } catch (e) {
        throw toDiskError(e, `cannot create ${this.file}`);
      }
    });
    this.queue = job.catch(() => {});
    return job;
  }

  private async start(h: FileHandle): Promise<void> {
    if (!this.fresh) return;
    await h.truncate(0);
    await writeAll(h, Buffer.concat([MAGIC, this.infoHash]), 0);
    await h.datasync();
    this.end = FILE_HEADER;
    this.fresh = false;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
    await this.handle?.close().catch(() => {});
    this.handle = null;
  }

  /** Delete the side file (every file it served is selected and complete). */
  async remove(): Promise<void> {
    await this.close();
    this.where.clear();
    await rm(this.file, { force: true }).catch(() => {});
  }
}

/** The info hash in a parts file's header, or null (absent, unreadable, not one). */
export async function partsInfoHash(file: string): Promise<Buffer | null> {
  const b = await readHeader(file, FILE_HEADER);
  return b && b.subarray(0, MAGIC.length).equals(MAGIC) ? b.subarray(MAGIC.length) : null;
}

async function readAt(h: FileHandle, buf: Buffer, pos: number): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await h.read(buf, done, buf.length - done, pos + done);
    if (bytesRead <= 0) break;
    done += bytesRead;
  }
  return done;
}

async function writeAll(h: FileHandle, buf: Buffer, pos: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await h.write(buf, done, buf.length - done, pos + done);
    if (bytesWritten <= 0) throw new Error('short write');
    done += bytesWritten;
  }
}
