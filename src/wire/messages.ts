/**
 * Peer wire messages (BEP 3): <4-byte big-endian length><1-byte id><payload>; length 0 is a
 * keep-alive. Pure functions over Buffers.
 */
import { WireError } from '../errors.js';

/** Size of the blocks we request (and the largest block we expect in a `piece` message). */
export const BLOCK_SIZE = 16384;

/**
 * Allowance added by maxMessageLength on top of the largest message we expect, so that
 * messages we do not use (e.g. BEP 10 extension messages carrying a 16 KiB metadata block
 * plus a small bencoded header) still fit and can be skipped rather than treated as attacks.
 */
export const MESSAGE_LENGTH_SLACK = 1024;

export const MessageId = {
  choke: 0,
  unchoke: 1,
  interested: 2,
  notInterested: 3,
  have: 4,
  bitfield: 5,
  request: 6,
  piece: 7,
  cancel: 8,
  port: 9,
  // BEP 6, the fast extension
  suggest: 13,
  haveAll: 14,
  haveNone: 15,
  reject: 16,
  allowedFast: 17,
  // BEP 10, the extension protocol
  extended: 20,
} as const;

export type Message =
  | { type: 'keep-alive' }
  | { type: 'choke' }
  | { type: 'unchoke' }
  | { type: 'interested' }
  | { type: 'not-interested' }
  | { type: 'have'; index: number }
  | { type: 'bitfield'; bitfield: Buffer }
  | { type: 'request'; index: number; begin: number; length: number }
  | { type: 'piece'; index: number; begin: number; block: Buffer }
  | { type: 'cancel'; index: number; begin: number; length: number }
  | { type: 'port'; port: number }
  | { type: 'suggest'; index: number }
  | { type: 'have-all' }
  | { type: 'have-none' }
  | { type: 'reject'; index: number; begin: number; length: number }
  | { type: 'allowed-fast'; index: number }
  /** BEP 10: `payload` is a view of the bytes after the extended id. */
  | { type: 'extended'; extId: number; payload: Buffer }
  | { type: 'unknown'; id: number; payloadLength: number };

/**
 * Largest value accepted in a message's length prefix (the prefix counts the id byte and the
 * payload, not itself) for a torrent of `pieceCount` pieces: the larger of a `piece` message
 * carrying one BLOCK_SIZE block and a full `bitfield`, plus MESSAGE_LENGTH_SLACK.
 */
export function maxMessageLength(pieceCount: number): number {
  return Math.max(1 + 8 + BLOCK_SIZE, 1 + Math.ceil(pieceCount / 8)) + MESSAGE_LENGTH_SLACK;
}

/**
 * The big-endian uint32 at `at` of `b`; the caller has checked that its 4 bytes are there. Used
 * on every message instead of Buffer#readUInt32BE, whose argument checks run in Node's own
 * JavaScript: a short download (a thousand blocks) runs them mostly unoptimized, about four
 * times slower than these few byte loads.
 */
export function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

/** Writes `v` (a uint32, checked by the caller) big-endian at `at` of `b` (see readU32). */
export function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

function checkU32(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new RangeError(`${what} must be a 32-bit unsigned integer, got ${n}`);
  }
}

function header(length: number, id: number, extra: number): Buffer {
  const buf = Buffer.allocUnsafe(5 + extra);
  writeU32(buf, 0, length);
  buf[4] = id;
  return buf;
}

function threeInts(id: number, index: number, begin: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(REQUEST_MESSAGE_BYTES);
  writeThreeInts(buf, 0, id, index, begin, length);
  return buf;
}

function writeThreeInts(
  buf: Buffer,
  at: number,
  id: number,
  index: number,
  begin: number,
  length: number,
): void {
  checkU32(index, 'index');
  checkU32(begin, 'begin');
  checkU32(length, 'length');
  writeU32(buf, at, 13);
  buf[at + 4] = id;
  writeU32(buf, at + 5, index);
  writeU32(buf, at + 9, begin);
  writeU32(buf, at + 13, length);
}

/** Bytes of a `request`, `cancel` or `reject` message. */
export const REQUEST_MESSAGE_BYTES = 17;

export function encodeRequest(index: number, begin: number, length: number): Buffer {
  return threeInts(MessageId.request, index, begin, length);
}

/** Writes a `request` at `at` in `buf` (REQUEST_MESSAGE_BYTES bytes), to batch many in one buffer. */
export function writeRequest(
  buf: Buffer,
  at: number,
  index: number,
  begin: number,
  length: number,
): void {
  writeThreeInts(buf, at, MessageId.request, index, begin, length);
}

export function encodeCancel(index: number, begin: number, length: number): Buffer {
  return threeInts(MessageId.cancel, index, begin, length);
}

export function encodeHave(index: number): Buffer {
  return oneInt(MessageId.have, index);
}

function oneInt(id: number, index: number): Buffer {
  checkU32(index, 'index');
  const buf = header(5, id, 4);
  writeU32(buf, 5, index);
  return buf;
}

export function encodeReject(index: number, begin: number, length: number): Buffer {
  return threeInts(MessageId.reject, index, begin, length);
}

/** A BEP 10 message: <len><20><extId><payload>. */
export function encodeExtended(extId: number, payload: Buffer): Buffer {
  if (!Number.isInteger(extId) || extId < 0 || extId > 255) {
    throw new RangeError(`extended message id ${extId} is out of range`);
  }
  const buf = header(2 + payload.length, MessageId.extended, 1 + payload.length);
  buf[5] = extId;
  payload.copy(buf, 6);
  return buf;
}

/** Bytes of a `piece` message before its block: length prefix, id, index, begin. */
export const PIECE_HEADER_BYTES = 13;

/**
 * The 13-byte header of a `piece` message carrying `blockLength` bytes; write it followed by
 * the block itself to avoid copying the block (e.g. with socket.cork()/write()/uncork()).
 */
export function encodePieceHeader(index: number, begin: number, blockLength: number): Buffer {
  checkU32(index, 'index');
  checkU32(begin, 'begin');
  if (!Number.isInteger(blockLength) || blockLength < 0 || blockLength > 0xffffffff - 9) {
    throw new RangeError(`block length ${blockLength} is out of range`);
  }
  const buf = header(9 + blockLength, MessageId.piece, 8);
  writeU32(buf, 5, index);
  writeU32(buf, 9, begin);
  return buf;
}

/** A whole `piece` message as one Buffer (header + a copy of the block). */
export function encodePiece(index: number, begin: number, block: Buffer): Buffer {
  return Buffer.concat([encodePieceHeader(index, begin, block.length), block]);
}

/**
 * Encodes any message. An 'unknown' message is encoded with `payloadLength` zero bytes of
 * payload (only useful for tests).
 */
export function encodeMessage(m: Message): Buffer {
  switch (m.type) {
    case 'keep-alive':
      return Buffer.alloc(4);
    case 'choke':
      return header(1, MessageId.choke, 0);
    case 'unchoke':
      return header(1, MessageId.unchoke, 0);
    case 'interested':
      return header(1, MessageId.interested, 0);
    case 'not-interested':
      return header(1, MessageId.notInterested, 0);
    case 'have':
      return encodeHave(m.index);
    case 'bitfield': {
      const buf = header(1 + m.bitfield.length, MessageId.bitfield, m.bitfield.length);
      m.bitfield.copy(buf, 5);
      return buf;
    }
    case 'request':
      return encodeRequest(m.index, m.begin, m.length);
    case 'piece':
      return encodePiece(m.index, m.begin, m.block);
    case 'cancel':
      return encodeCancel(m.index, m.begin, m.length);
    case 'port': {
      if (!Number.isInteger(m.port) || m.port < 0 || m.port > 0xffff) {
        throw new RangeError(`port ${m.port} is out of range`);
      }
      const buf = header(3, MessageId.port, 2);
      buf.writeUInt16BE(m.port, 5);
      return buf;
    }
    case 'suggest':
      return oneInt(MessageId.suggest, m.index);
    case 'have-all':
      return header(1, MessageId.haveAll, 0);
    case 'have-none':
      return header(1, MessageId.haveNone, 0);
    case 'reject':
      return encodeReject(m.index, m.begin, m.length);
    case 'allowed-fast':
      return oneInt(MessageId.allowedFast, m.index);
    case 'extended':
      return encodeExtended(m.extId, m.payload);
    case 'unknown': {
      if (!Number.isInteger(m.id) || m.id < 0 || m.id > 255) {
        throw new RangeError(`message id ${m.id} is out of range`);
      }
      const buf = Buffer.alloc(5 + m.payloadLength);
      writeU32(buf, 0, 1 + m.payloadLength);
      buf[4] = m.id;
      return buf;
    }
  }
}

const NAMES: Record<number, string> = {
  0: 'choke',
  1: 'unchoke',
  2: 'interested',
  3: 'not-interested',
  4: 'have',
  5: 'bitfield',
  6: 'request',
  7: 'piece',
  8: 'cancel',
  9: 'port',
  13: 'suggest',
  14: 'have-all',
  15: 'have-none',
  16: 'reject',
  17: 'allowed-fast',
  20: 'extended',
};

function expectPayload(id: number, payload: number, expected: number): void {
  if (payload !== expected) {
    throw new WireError(
      `${NAMES[id] ?? `message ${id}`}: payload is ${payload} bytes, expected ${expected}`,
    );
  }
}

/**
 * Reads ONE message at the start of `buf`. Returns null while more bytes are needed, else the
 * message and the number of bytes it used. The length prefix is checked against `maxLength`
 * as soon as its 4 bytes are there (WireError), before waiting for the body. Fixed-size
 * messages with a wrong size throw WireError. Unknown ids come back as 'unknown' (the caller
 * skips `size` bytes). `piece` blocks and `bitfield` payloads are views into `buf` (no copy).
 */
export function decodeMessage(
  buf: Buffer,
  maxLength: number,
): { message: Message; size: number } | null {
  if (buf.length < 4) return null;
  const length = readU32(buf, 0);
  if (length > maxLength) {
    throw new WireError(`message length ${length} exceeds the limit of ${maxLength}`);
  }
  if (length === 0) return { message: { type: 'keep-alive' }, size: 4 };
  const size = 4 + length;
  if (buf.length < size) return null;
  const id = buf[4]!;
  const payload = length - 1;
  let message: Message;
  switch (id) {
    case MessageId.choke:
      expectPayload(id, payload, 0);
      message = { type: 'choke' };
      break;
    case MessageId.unchoke:
      expectPayload(id, payload, 0);
      message = { type: 'unchoke' };
      break;
    case MessageId.interested:
      expectPayload(id, payload, 0);
      message = { type: 'interested' };
      break;
    case MessageId.notInterested:
      expectPayload(id, payload, 0);
      message = { type: 'not-interested' };
      break;
    case MessageId.have:
      expectPayload(id, payload, 4);
      message = { type: 'have', index: readU32(buf, 5) };
      break;
    case MessageId.bitfield:
      message = { type: 'bitfield', bitfield: buf.subarray(5, size) };
      break;
    case MessageId.request:
    case MessageId.cancel:
      expectPayload(id, payload, 12);
      message = {
        type: id === MessageId.request ? 'request' : 'cancel',
        index: readU32(buf, 5),
        begin: readU32(buf, 9),
        length: readU32(buf, 13),
      };
      break;
    case MessageId.piece:
      if (payload < 8) {
        throw new WireError(`piece: payload is ${payload} bytes, expected at least 8`);
      }
      message = {
        type: 'piece',
        index: readU32(buf, 5),
        begin: readU32(buf, 9),
        block: buf.subarray(13, size),
      };
      break;
    case MessageId.port:
      expectPayload(id, payload, 2);
      message = { type: 'port', port: buf.readUInt16BE(5) };
      break;
    case MessageId.suggest:
    case MessageId.allowedFast:
      expectPayload(id, payload, 4);
      message = {
        type: id === MessageId.suggest ? 'suggest' : 'allowed-fast',
        index: readU32(buf, 5),
      };
      break;
    case MessageId.haveAll:
    case MessageId.haveNone:
      expectPayload(id, payload, 0);
      message = { type: id === MessageId.haveAll ? 'have-all' : 'have-none' };
      break;
    case MessageId.reject:
      expectPayload(id, payload, 12);
      message = {
        type: 'reject',
        index: readU32(buf, 5),
        begin: readU32(buf, 9),
        length: readU32(buf, 13),
      };
      break;
    case MessageId.extended:
      if (payload < 1) throw new WireError('extended: payload is empty, expected an id');
      message = { type: 'extended', extId: buf[5]!, payload: buf.subarray(6, size) };
      break;
    default:
      message = { type: 'unknown', id, payloadLength: payload };
  }
  return { message, size };
}
