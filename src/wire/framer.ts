/**
 * Streaming framer: feed it socket bytes, pull whole messages out.
 *
 * Bytes live in one buffer the framer owns, compacted in place, so a steady stream allocates
 * nothing: bytes can be pushed (`push`, one copy) or read straight into the framer's free space
 * (`writable` + `commit`, for a socket's `onread`). Messages are parsed in place: a `piece`
 * block or `bitfield` payload is a view that stays valid only until the next `push` or
 * `writable` call, so the caller copies what it keeps. Buffered bytes never exceed the message
 * length cap plus one read, so a peer cannot make the framer grow without bound.
 */
import { WireError } from '../errors.js';
import { HANDSHAKE_LENGTH, type Handshake, decodeHandshake } from './handshake.js';
import { type Message, MessageId, decodeMessage, readU32 } from './messages.js';

/** Default size of one socket read into the framer. */
export const READ_SIZE = 64 * 1024;
/**
 * Largest read a busy connection asks for (`PeerConnection` doubles its read size from
 * READ_SIZE while reads fill what it offers): fewer system calls and callbacks per byte.
 */
export const MAX_READ_SIZE = 256 * 1024;

export class Framer {
  #buf: Buffer;
  #start = 0;
  #end = 0;
  #maxLength: number;
  #expectHandshake: boolean;

  constructor(opts: { maxLength: number; expectHandshake: boolean }) {
    this.#maxLength = opts.maxLength;
    this.#expectHandshake = opts.expectHandshake;
    this.#buf = Buffer.allocUnsafe(2 * READ_SIZE);
  }

  /** Bytes received and not yet consumed. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /**
   * Bytes buffered of a `piece` message not yet whole (0 when the next message is another kind,
   * or not started): block data on its way, which counts as a peer's progress where a
   * keep-alive or a `have` does not.
   */
  get partialPiece(): number {
    const avail = this.#end - this.#start;
    if (this.#expectHandshake || avail < 5 || this.#buf[this.#start + 4] !== MessageId.piece) {
      return 0;
    }
    return avail;
  }

  /** Changes the length cap (e.g. once the piece count is known). */
  setMaxLength(n: number): void {
    this.#maxLength = n;
  }

  /** Append bytes (copied). */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#reserve(chunk.length);
    chunk.copy(this.#buf, this.#end);
    this.#end += chunk.length;
  }

  /** Free space of at least `min` bytes to read into; then call `commit(bytesRead)`. */
  writable(min = READ_SIZE): Buffer {
    this.#reserve(min);
    return this.#buf.subarray(this.#end);
  }

  commit(n: number): void {
    if (n < 0 || this.#end + n > this.#buf.length) throw new RangeError(`bad commit of ${n} bytes`);
    this.#end += n;
  }

  /**
   * The peer's handshake once all 68 bytes are there, else null. Throws WireError as soon as
   * the bytes received cannot be a handshake. Only valid while a handshake is expected.
   */
  nextHandshake(): Handshake | null {
    if (!this.#expectHandshake) throw new Error('Framer: no handshake expected');
    const n = Math.min(this.buffered, HANDSHAKE_LENGTH);
    const hs = decodeHandshake(this.#buf.subarray(this.#start, this.#start + n));
    if (hs === null) return null;
    // The handshake's fields are views: copy them, they outlive the buffer's next compaction.
    this.#start += HANDSHAKE_LENGTH;
    this.#expectHandshake = false;
    return {
      ...hs,
      infoHash: Buffer.from(hs.infoHash),
      peerId: Buffer.from(hs.peerId),
      reserved: Buffer.from(hs.reserved),
    };
  }

  /**
   * The next whole message, or null if more bytes are needed. Throws WireError on a malformed
   * message or a length prefix above the cap (checked as soon as its 4 bytes arrive). After a
   * WireError the connection should be dropped.
   */
  next(): Message | null {
    if (this.#expectHandshake) throw new Error('Framer: read the handshake first');
    const avail = this.#end - this.#start;
    if (avail < 4) return null;
    const length = readU32(this.#buf, this.#start);
    if (length > this.#maxLength) {
      throw new WireError(`message length ${length} exceeds the limit of ${this.#maxLength}`);
    }
    const size = 4 + length;
    if (avail < size) return null;
    const decoded = decodeMessage(
      this.#buf.subarray(this.#start, this.#start + size),
      this.#maxLength,
    );
    if (decoded === null || decoded.size !== size) {
      // Cannot happen: the view holds exactly one whole message.
      throw new WireError('framing error');
    }
    // Positions only move back in #reserve: a region handed out by `writable` stays where it is.
    this.#start += size;
    return decoded.message;
  }

  /** Make room for `n` more bytes: compact in place, grow only up to the cap. */
  #reserve(n: number): void {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#buf.length - this.#end >= n) return;
    const live = this.#end - this.#start;
    const limit = this.#maxLength + 4 + HANDSHAKE_LENGTH + Math.max(n, READ_SIZE);
    if (live + n > limit) {
      throw new WireError(`peer sent ${live + n} bytes without a whole message`);
    }
    if (this.#buf.length - live >= n && this.#start > 0) {
      this.#buf.copyWithin(0, this.#start, this.#end);
    } else {
      const grown = Buffer.allocUnsafe(Math.min(limit, Math.max(2 * this.#buf.length, live + n)));
      this.#buf.copy(grown, 0, this.#start, this.#end);
      this.#buf = grown;
    }
    this.#start = 0;
    this.#end = live;
  }
}
