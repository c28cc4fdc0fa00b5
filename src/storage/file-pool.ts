/**
 * A bounded pool of open file handles, least recently used first out.
 *
 * A torrent may hold up to 100,000 files; a process may hold far fewer descriptors (1,024 on
 * most desktops, 256 under some shells). Storage keeps at most `capacity` files open: opening one
 * more closes the least recently used idle handle first. A handle in use (a read, write or sync
 * under way) is never closed: `use()` counts its users, and when every handle is busy the next
 * caller waits for one to be released. So an eviction can never pull a handle from under an
 * operation, and at most `capacity` descriptors are held at any time.
 *
 * Size: the soft RLIMIT_NOFILE (src/fd-limit.ts), minus what peer sockets and the rest of the
 * process need; see `poolCapacity`.
 *
 * The pool holds any kind of handle `H`: storage keeps raw descriptors (numbers), which it can
 * open and close synchronously (see Inline in fs-util.ts); a `FileHandle` only comes from the
 * thread pool. The caller says how to close one.
 */
import { logger } from '../log.js';

const log = logger('tdl:storage');

/** Largest pool: more open files do not make a download faster. */
export const MAX_POOL = 512;
/** Smallest pool, even under a tiny limit. */
export const MIN_POOL = 4;
/**
 * Descriptors kept for everything but files and peer sockets (stdio, the resume file, DNS, libuv);
 * tracker announces take at most a quarter of the limit, or 64 (see announceSlots).
 */
export const FD_RESERVE = 64;
/** Peer sockets assumed when the caller does not say. */
export const DEFAULT_PEER_SOCKETS = 64;
/**
 * Files to keep open for a process allowed `limit` descriptors with up to `sockets` peer
 * sockets: a quarter of the limit, no more than what is left after the sockets and a reserve,
 * and within [MIN_POOL, MAX_POOL].
 */
export function poolCapacity(limit: number, sockets = DEFAULT_PEER_SOCKETS): number {
  const left = limit - sockets - FD_RESERVE;
  return Math.max(MIN_POOL, Math.min(MAX_POOL, Math.floor(limit / 4), left));
}

interface Entry<H> {
  handle: Promise<H>;
  users: number;
}

export class FilePool<H> {
  /** Open (or opening) handles; Map order is the LRU order, oldest first. */
  private readonly entries = new Map<number, Entry<H>>();
  /** Handles being closed: they still count against the capacity. */
  private readonly closing = new Set<Promise<void>>();
  /** Callers waiting for a slot. */
  private waiters: (() => void)[] = [];
  /** In use when the pool closed: closed when their last user is done (see close()). */
  private readonly draining = new Map<Entry<H>, { key: number; done: () => void }>();
  private closed = false;
  /** Files opened, in total (for tests and logs). */
  opens = 0;
  /** Most handles ever held at once. */
  peak = 0;

  /**
   * `beforeClose` runs (and is awaited) before a handle is closed, by eviction or at the end:
   * storage syncs a file it wrote there, so that the file need not be opened again to be synced.
   * `closeHandle` closes one.
   */
  constructor(
    readonly capacity: number,
    private readonly closeHandle: (h: H) => Promise<void>,
    private readonly beforeClose?: (key: number, h: H) => Promise<void>,
  ) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`pool capacity must be a positive integer, got ${capacity}`);
    }
  }

  /** Handles held now (open, opening or closing). */
  get size(): number {
    return this.entries.size + this.closing.size;
  }

  has(key: number): boolean {
    return this.entries.has(key);
  }

  /**
   * Run `fn` with the handle of file `key`, opening it with `open` when it is not open. The handle
   * stays open at least until `fn` settles. A failed open is not cached.
   */
  async use<T>(key: number, open: () => Promise<H>, fn: (h: H) => Promise<T>): Promise<T> {
    const e = await this.acquire(key, open);
    try {
      return await fn(await e.handle);
    } finally {
      this.release(e);
    }
  }

  /** One user of `e` is done: the next waiter may go, or, once the pool closed, it is closed. */
  private release(e: Entry<H>): void {
    e.users--;
    if (e.users > 0) return;
    const d = this.draining.get(e);
    if (!d) {
      this.wakeOne();
      return;
    }
    this.draining.delete(e);
    void this.closeEntry(d.key, e).then(d.done);
  }

  private async acquire(key: number, open: () => Promise<H>): Promise<Entry<H>> {
    for (;;) {
      if (this.closed) throw new Error('file pool is closed');
      const e = this.entries.get(key);
      if (e) {
        // Most recently used goes last.
        this.entries.delete(key);
        this.entries.set(key, e);
        e.users++;
        try {
          await e.handle;
        } catch (err) {
          this.release(e);
          throw err;
        }
        return e;
      }
      if (this.size >= this.capacity) {
        const closing = this.evictOne();
        if (closing) await closing;
        else await new Promise<void>((resolve) => this.waiters.push(resolve));
        continue;
      }
      const entry: Entry<H> = { handle: open(), users: 1 };
      this.entries.set(key, entry);
      this.opens++;
      this.peak = Math.max(this.peak, this.size);
      try {
        await entry.handle;
      } catch (err) {
        if (this.entries.get(key) === entry) this.entries.delete(key);
        this.release(entry);
        throw err;
      }
      return entry;
    }
  }

  /** Start closing the least recently used idle handle; null when every handle is in use. */
  private evictOne(): Promise<void> | null {
    for (const [key, e] of this.entries) {
      if (e.users > 0) continue;
      this.entries.delete(key);
      return this.closeEntry(key, e);
    }
    return null;
  }

  private closeEntry(key: number, e: Entry<H>): Promise<void> {
    const p = e.handle
      .then(async (h) => {
        try {
          await this.beforeClose?.(key, h);
        } finally {
          await this.closeHandle(h);
        }
      })
      .catch((err: unknown) => log('closing file %d: %s', key, (err as Error).message))
      .finally(() => {
        this.closing.delete(p);
        this.wakeOne();
      });
    this.closing.add(p);
    return p;
  }

  private wakeOne(): void {
    const w = this.waiters.shift();
    w?.();
  }

  /**
   * Close every handle; no new use is taken. A handle still in use (a read of a peer's upload or
   * of the stream's read-ahead may outlive the download) is closed when its last user is done,
   * and close() waits for that: a raw descriptor, unlike a FileHandle, would otherwise be closed
   * under the read, and its number reused by the next open.
   */
  async close(): Promise<void> {
    this.closed = true;
    const busy: Promise<void>[] = [];
    for (const [key, e] of this.entries) {
      if (e.users === 0) void this.closeEntry(key, e);
      else busy.push(new Promise<void>((done) => this.draining.set(e, { key, done })));
    }
    this.entries.clear();
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
    await Promise.all(busy);
    while (this.closing.size > 0) await Promise.all([...this.closing]);
  }
}
