/**
 * A token bucket for `--max-upload-rate` and `--max-download-rate`, pure over an injected clock.
 *
 * Tokens (bytes) accrue at `rate` bytes per second up to `burst`. The bucket starts EMPTY, so
 * over any span starting at its creation (or at a change from unlimited to limited) no more
 * than `rate × elapsed` bytes are granted by `take`; over any other span at most
 * `rate × elapsed + burst`. Tokens are kept as a fraction, never rounded away, so the rate is
 * exact over time however small or irregular the takes are.
 *
 * Two ways to use it:
 * - before sending (upload): `waitMs(n)` says when `n` bytes will be there, `take(n)` grants
 *   them (or fewer, never more);
 * - after receiving (download, where a read cannot be made exactly `n` bytes long):
 *   `consume(n)` records bytes that already arrived, which may leave the bucket in debt; while
 *   `waitMs(1) > 0` the reader stays paused. The overshoot is at most one read.
 *
 * See docs/DESIGN.md ("Rate limits").
 */
import { BLOCK_SIZE } from '../wire/messages.js';
import { monotonicMs } from '../clock.js';

/** Default burst: this many seconds of the rate ... */
export const DEFAULT_BURST_SECONDS = 0.25;
/** ... but never less than this (four blocks, so a late timer loses no tokens at low rates). */
export const MIN_BURST_BYTES = 4 * BLOCK_SIZE;
/** A limited socket reads at most this many seconds of the rate at once ... */
export const READ_CAP_SECONDS = 0.1;
/** ... but never less than this (one block and its header). */
export const MIN_READ_CAP_BYTES = BLOCK_SIZE + 13;
/** Tolerance for the floating-point sums of accrued tokens (far below one byte). */
const EPSILON = 1e-6;

export interface TokenBucketOptions {
  /** Largest number of tokens kept; default max(MIN_BURST_BYTES, rate × DEFAULT_BURST_SECONDS). */
  burstBytes?: number;
  /** Clock in milliseconds; default monotonicMs (src/clock.ts). */
  now?: () => number;
}

function checkRate(rate: number): void {
  if (Number.isNaN(rate) || rate < 0) throw new RangeError(`bad rate ${rate}`);
}

export class TokenBucket {
  #rate = 0;
  #burst = 0;
  readonly #fixedBurst: number | undefined;
  #tokens = 0;
  #last: number;
  readonly #now: () => number;

  /** `rateBytesPerSec` 0 or Infinity means unlimited. */
  constructor(rateBytesPerSec: number, opts: TokenBucketOptions = {}) {
    if (opts.burstBytes !== undefined && !(opts.burstBytes >= 1)) {
      throw new RangeError(`bad burst ${opts.burstBytes}`);
    }
    this.#fixedBurst = opts.burstBytes;
    this.#now = opts.now ?? (() => monotonicMs());
    this.#last = this.#now();
    this.setRate(rateBytesPerSec);
  }

  /** Bytes per second; 0 when unlimited. */
  get rate(): number {
    return this.#rate;
  }

  get unlimited(): boolean {
    return this.#rate === 0;
  }

  get burst(): number {
    return this.#burst;
  }

  /** Whole tokens available now (negative while in debt after `consume`). */
  available(): number {
    if (this.unlimited) return Infinity;
    this.#refill();
    return Math.floor(this.#tokens + EPSILON);
  }

  /** Take up to `want` bytes now; returns how many were granted (0..want). */
  take(want: number): number {
    if (!(want > 0)) return 0;
    want = Math.floor(want);
    if (this.unlimited) return want;
    this.#refill();
    const grant = Math.max(0, Math.min(want, Math.floor(this.#tokens + EPSILON)));
    this.#tokens -= grant;
    return grant;
  }

  /**
   * All or nothing: takes `n` bytes and returns true if they are there now, else takes nothing.
   * For whole blocks to send; `n` must not exceed `burst`, or it would never succeed.
   */
  tryTake(n: number): boolean {
    if (!(n > 0)) return true;
    if (this.unlimited) return true;
    this.#refill();
    if (this.#tokens + EPSILON < n) return false;
    this.#tokens -= n;
    return true;
  }

  /**
   * Records `n` bytes already transferred, whatever the bucket holds: the bucket may go into
   * debt, which is repaid before anything else is granted.
   */
  consume(n: number): void {
    if (!(n > 0) || this.unlimited) return;
    this.#refill();
    this.#tokens -= n;
  }

  /**
   * Milliseconds until at least `n` bytes (at most one burst: `n` is capped at `burst`, so a
   * caller taking what it is granted always progresses) can be taken; 0 if now.
   */
  waitMs(n: number): number {
    if (this.unlimited || !(n > 0)) return 0;
    this.#refill();
    const need = Math.min(n, this.#burst) - this.#tokens;
    if (need <= EPSILON) return 0;
    return Math.max(1, Math.ceil(((need - EPSILON) * 1000) / this.#rate));
  }

  /** Changes the rate from now on (0 or Infinity = unlimited); tokens accrued so far are kept. */
  setRate(rateBytesPerSec: number): void {
    checkRate(rateBytesPerSec);
    const rate = rateBytesPerSec === Infinity ? 0 : rateBytesPerSec;
    const wasUnlimited = this.unlimited;
    this.#refill();
    this.#rate = rate;
    if (rate === 0) {
      this.#burst = Infinity;
      this.#tokens = 0;
      return;
    }
    this.#burst = this.#fixedBurst ?? Math.max(MIN_BURST_BYTES, rate * DEFAULT_BURST_SECONDS);
    // Becoming limited starts empty, like a new bucket; otherwise keep what has accrued.
    this.#tokens = wasUnlimited ? 0 : Math.min(this.#tokens, this.#burst);
  }

  #refill(): void {
    const t = this.#now();
    // A clock that goes backwards (it should not) is treated as standing still.
    if (t > this.#last) {
      if (this.#rate > 0) {
        this.#tokens = Math.min(this.#burst, this.#tokens + ((t - this.#last) * this.#rate) / 1000);
      }
      this.#last = t;
    }
  }
}

/** Something that can stop and restart reading, like a net.Socket. */
export interface Pausable {
  pause(): void;
  resume(): void;
}

/** Timer functions, injectable for tests (vi.useFakeTimers works with the defaults too). */
export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
  /**
   * Runs `fn` once the I/O callbacks of this turn of the event loop have run (setImmediate);
   * returns its cancellation.
   */
  afterIo(fn: () => void): () => void;
}

const defaultTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
  afterIo: (fn) => {
    const h = setImmediate(fn);
    return () => clearImmediate(h);
  },
};

/**
 * `--max-download-rate` over many connections sharing one bucket. Each connection registers its
 * socket (`add`) and reports every read (`onRead(bytes)`). When the bucket goes into debt every
 * registered reader is paused, and one timer resumes them all when the debt is repaid.
 * Over [0, t] from the bucket's creation the bytes reported are at most `rate × t` plus the
 * reads in flight when the pause happened (one per reader at most).
 *
 * The reader that put the bucket in debt is paused at once (libuv reads a socket again and
 * again in one callback while it has bytes), the others once the I/O callbacks of the current
 * turn of the event loop have run, so that every socket with bytes waiting reads once after
 * each resume. Paused at once, inside the first read, the others never read: a peer whose data
 * always waits (a fast seeder) is read first on every resume and puts the bucket back in debt,
 * while a quiet peer's `interested` or `request` waits unread for as long as the first one
 * sends (seen with aria2c: never read in 60 s, so it was never unchoked and dropped tdl as
 * idle).
 */
export class ReadLimiter {
  readonly bucket: TokenBucket;
  readonly #timers: Timers;
  readonly #readers = new Set<Pausable>();
  #paused = false;
  #timer: unknown = null;
  /** Cancels the pause due once this turn's reads are done, while one is pending. */
  #cancelPause: (() => void) | null = null;

  constructor(bucket: TokenBucket, timers: Timers = defaultTimers) {
    this.bucket = bucket;
    this.#timers = timers;
  }

  /**
   * The most a limited socket should read at once (Infinity when unlimited): a tenth of a
   * second of the rate, at least a block. A read is the unit the limit pauses by: at 46 KiB/s a
   * 256 KiB read held every socket for 5.6 s, the download went by bursts and its rate read
   * 0 B/s between them.
   */
  get readCap(): number {
    if (this.bucket.unlimited) return Infinity;
    return Math.max(MIN_READ_CAP_BYTES, Math.ceil(this.bucket.rate * READ_CAP_SECONDS));
  }

  /** True while readers are held paused. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Registers a reader (paused at once if the limiter is); returns its removal. */
  add(r: Pausable): () => void {
    this.#readers.add(r);
    if (this.#paused) r.pause();
    return () => {
      this.#readers.delete(r);
    };
  }

  /**
   * Call after every read with the bytes read, and the reader that read: while in debt it is
   * paused at once (a socket goes on reading in the same callback while it can), the others once
   * this turn's reads are done.
   */
  onRead(bytes: number, reader?: Pausable): void {
    if (this.bucket.unlimited) return;
    this.bucket.consume(bytes);
    this.#check();
    if (this.#paused && reader && this.#readers.has(reader)) reader.pause();
  }

  /** Changes the rate (0 = unlimited) and resumes readers if they may now read. */
  setRate(rateBytesPerSec: number): void {
    this.bucket.setRate(rateBytesPerSec);
    if (this.#timer !== null) this.#timers.clear(this.#timer);
    this.#timer = null;
    this.#check();
  }

  /** Stops the timer; readers are left as they are (call when the download ends). */
  close(): void {
    if (this.#timer !== null) this.#timers.clear(this.#timer);
    this.#timer = null;
    this.#cancelPause?.();
    this.#cancelPause = null;
    this.#readers.clear();
    this.#paused = false;
  }

  #check(): void {
    const wait = this.bucket.waitMs(1);
    if (wait === 0) {
      if (this.#paused) {
        this.#paused = false;
        this.#cancelPause?.();
        this.#cancelPause = null;
        for (const r of [...this.#readers]) r.resume();
      }
      return;
    }
    if (!this.#paused) {
      this.#paused = true;
      this.#cancelPause = this.#timers.afterIo(() => {
        this.#cancelPause = null;
        for (const r of [...this.#readers]) r.pause();
      });
    }
    if (this.#timer === null) {
      this.#timer = this.#timers.set(() => {
        this.#timer = null;
        this.#check();
      }, wait);
    }
  }
}
