/**
 * Streaming framer: feed it socket chunks, pull whole messages out.
 *
 * Chunks are kept in a list and never concatenated as a whole: reading one message joins only
 * the bytes of that message (and when a message sits inside one chunk it is a zero-copy view
 * of it), so the total work is O(bytes received) however the stream is split.
 */
import { WireError } from '../errors.js';
import { HANDSHAKE_LENGTH, type Handshake, decodeHandshake } from './handshake.js';
import { type Message, decodeMessage } from './messages.js';

export class Framer {
  #chunks: Buffer[] = [];
  #head = 0; // index of the first live chunk in #chunks
  #headOffset = 0; // bytes already consumed from #chunks[#head]
  #buffered = 0;
  #maxLength: number;
  #expectHandshake: boolean;

  constructor(opts: { maxLength: number; expectHandshake: boolean }) {
    this.#maxLength = opts.maxLength;
    this.#expectHandshake = opts.expectHandshake;
  }

  /** Bytes received and not yet consumed. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Changes the length cap (e.g. once the piece count is known). */
  setMaxLength(n: number): void {
    this.#maxLength = n;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /**
   * The peer's handshake once all 68 bytes are there, else null. Throws WireError as soon as
   * the bytes received cannot be a handshake. Only valid while a handshake is expected.
   */
  nextHandshake(): Handshake | null {
    if (!this.#expectHandshake) throw new Error('Framer: no handshake expected');
    const hs = decodeHandshake(this.#peek(Math.min(this.#buffered, HANDSHAKE_LENGTH)));
    if (hs === null) return null;
    this.#consume(HANDSHAKE_LENGTH);
    this.#expectHandshake = false;
    return hs;
  }

  /**
   * The next whole message, or null if more bytes are needed. Throws WireError on a malformed
   * message or a length prefix above the cap (checked as soon as its 4 bytes arrive). After a
   * WireError the connection should be dropped.
   */
  next(): Message | null {
    if (this.#expectHandshake) throw new Error('Framer: read the handshake first');
    if (this.#buffered < 4) return null;
    const prefix = this.#peek(4);
    const length = prefix.readUInt32BE(0);
    if (length > this.#maxLength) {
      throw new WireError(`message length ${length} exceeds the limit of ${this.#maxLength}`);
    }
    const size = 4 + length;
    if (this.#buffered < size) return null;
    const bytes = this.#peek(size);
    const decoded = decodeMessage(bytes, this.#maxLength);
    if (decoded === null || decoded.size !== size) {
      // Cannot happen: `bytes` holds exactly one whole message.
      throw new WireError('framing error');
    }
    this.#consume(size);
    return decoded.message;
  }

  /** The first `n` buffered bytes (n <= buffered): a view if they sit in one chunk, else a copy. */
  #peek(n: number): Buffer {
    const first = this.#chunks[this.#head];
    if (first === undefined || n === 0) return Buffer.alloc(0);
    if (first.length - this.#headOffset >= n) {
      return first.subarray(this.#headOffset, this.#headOffset + n);
    }
    const out = Buffer.allocUnsafe(n);
    let copied = 0;
    let offset = this.#headOffset;
    for (let i = this.#head; copied < n; i++) {
      const chunk = this.#chunks[i]!;
      const take = Math.min(chunk.length - offset, n - copied);
      chunk.copy(out, copied, offset, offset + take);
      copied += take;
      offset = 0;
    }
    return out;
  }

  #consume(n: number): void {
    this.#buffered -= n;
    while (n > 0) {
      const chunk = this.#chunks[this.#head]!;
      const left = chunk.length - this.#headOffset;
      if (left > n) {
        this.#headOffset += n;
        break;
      }
      n -= left;
      this.#head++;
      this.#headOffset = 0;
    }
    // Drop consumed chunk references now and then (amortised O(1)).
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head > 64 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}
