/**
 * ut_metadata (BEP 9) payloads: the bytes after <20><extended id>.
 *
 * A message is a bencoded dictionary {msg_type, piece[, total_size]}; a `data` message is
 * followed, after the dictionary, by the piece's bytes (16 KiB, the last piece shorter).
 * Pure functions over Buffers; everything decoded is untrusted.
 */
import { WireError } from '../errors.js';
import { encode, isInt } from '../metainfo/bencode.js';
import { decodeDictPayload } from './extension.js';

export const METADATA_PIECE_SIZE = 16384;
/**
 * Largest `metadata_size` (the info dictionary's length) tdl accepts: 16 MiB, room for
 * about 800,000 piece hashes, several times the largest info dictionaries in use, and
 * within libtorrent's 30 MiB so that such torrents also spread by magnet in libtorrent
 * swarms. It bounds the memory a metadata fetch can take (pieces are kept as they arrive).
 */
export const MAX_METADATA_SIZE = 16 * 1024 * 1024;
/** Pieces of the largest metadata accepted: a piece index at or above this is nonsense. */
export const MAX_METADATA_PIECES = MAX_METADATA_SIZE / METADATA_PIECE_SIZE;

export const UtMetadataType = { request: 0, data: 1, reject: 2 } as const;

export type UtMetadataMessage =
  | { type: 'request'; piece: number }
  | { type: 'data'; piece: number; totalSize: number; data: Buffer }
  | { type: 'reject'; piece: number }
  /** A msg_type this version does not know: BEP 9 says to ignore it. */
  | { type: 'unknown'; msgType: number };

/** Nesting accepted in the dictionary (only integers are expected). */
const MAX_DEPTH = 4;
/** Longest dictionary accepted before a piece's data (the real one is about 50 bytes). */
const MAX_HEADER_BYTES = 1024;

/** Number of 16 KiB pieces of metadata of `size` bytes. */
export function metadataPieceCount(size: number): number {
  return Math.ceil(size / METADATA_PIECE_SIZE);
}

/** Length of piece `piece` of metadata of `size` bytes. */
export function metadataPieceLength(size: number, piece: number): number {
  return Math.min(METADATA_PIECE_SIZE, size - piece * METADATA_PIECE_SIZE);
}

function checkPiece(piece: number): void {
  if (!Number.isInteger(piece) || piece < 0 || piece >= MAX_METADATA_PIECES) {
    throw new RangeError(`metadata piece ${piece} is out of range`);
  }
}

/** The payload of a ut_metadata message (dictionary, then the data of a `data` message). */
export function encodeUtMetadata(m: UtMetadataMessage): Buffer {
  switch (m.type) {
    case 'request':
    case 'reject':
      checkPiece(m.piece);
      return encode({ msg_type: UtMetadataType[m.type], piece: m.piece });
    case 'data': {
      checkPiece(m.piece);
      if (m.data.length > METADATA_PIECE_SIZE) {
        throw new RangeError(`metadata piece of ${m.data.length} bytes is too long`);
      }
      if (!Number.isInteger(m.totalSize) || m.totalSize < 0) {
        throw new RangeError(`total_size ${m.totalSize} is out of range`);
      }
      const head = encode({
        msg_type: UtMetadataType.data,
        piece: m.piece,
        total_size: m.totalSize,
      });
      return Buffer.concat([head, m.data]);
    }
    case 'unknown':
      if (!Number.isInteger(m.msgType) || m.msgType < 0) {
        throw new RangeError(`msg_type ${m.msgType} is out of range`);
      }
      return encode({ msg_type: m.msgType });
  }
}

const CH_0 = 0x30;
const CH_9 = 0x39;
const CH_COLON = 0x3a;
const CH_E = 0x65;
const CH_I = 0x69;
const CH_D = 0x64;
const CH_L = 0x6c;

/**
 * Where the bencoded value at the start of `b` ends, found by skipping over lengths and
 * brackets (no decoding; the strict decoder checks the value afterwards). WireError when
 * the value does not end within `limit` bytes or is not bencode at all.
 */
function valueEnd(b: Buffer, limit: number): number {
  const end = Math.min(b.length, limit);
  let pos = 0;
  let depth = 0;
  do {
    if (pos >= end) throw new WireError('ut_metadata: dictionary is truncated or too long');
    const c = b[pos]!;
    if (c === CH_D || c === CH_L) {
      if (++depth > MAX_DEPTH) throw new WireError('ut_metadata: nested too deeply');
      pos++;
    } else if (c === CH_E) {
      if (depth === 0) throw new WireError('ut_metadata: unexpected end marker');
      depth--;
      pos++;
    } else if (c === CH_I) {
      const e = b.indexOf(CH_E, pos);
      if (e < 0 || e >= end) throw new WireError('ut_metadata: integer is truncated');
      pos = e + 1;
    } else if (c >= CH_0 && c <= CH_9) {
      let n = 0;
      let p = pos;
      while (p < end && b[p]! >= CH_0 && b[p]! <= CH_9 && p - pos < 8) n = n * 10 + b[p++]! - CH_0;
      if (p >= end || b[p] !== CH_COLON) throw new WireError('ut_metadata: bad string length');
      pos = p + 1 + n;
    } else {
      throw new WireError(`ut_metadata: unexpected byte 0x${c.toString(16).padStart(2, '0')}`);
    }
  } while (depth > 0);
  if (pos > end) throw new WireError('ut_metadata: string runs past the end');
  return pos;
}

/**
 * Decodes a ut_metadata payload. WireError on anything malformed: not a bencoded dictionary,
 * `msg_type` or `piece` missing or not a sane integer, a `data` message without a valid
 * `total_size` or with more than METADATA_PIECE_SIZE bytes of data, bytes after the
 * dictionary of a `request` or `reject`. `data` is a view into `payload` (copy to keep it).
 * Whether the piece index and sizes fit the metadata being fetched is for the caller.
 */
export function decodeUtMetadata(payload: Buffer): UtMetadataMessage {
  const end = valueEnd(payload, MAX_HEADER_BYTES);
  const d = decodeDictPayload(payload.subarray(0, end), 'ut_metadata', MAX_DEPTH);
  const msgType = d['msg_type'];
  if (!isInt(msgType) || msgType < 0) throw new WireError('ut_metadata: bad or missing msg_type');
  if (msgType > UtMetadataType.reject) return { type: 'unknown', msgType };
  const piece = d['piece'];
  if (!isInt(piece) || piece < 0 || piece >= MAX_METADATA_PIECES) {
    throw new WireError(`ut_metadata: bad or missing piece${isInt(piece) ? ` (${piece})` : ''}`);
  }
  if (msgType === UtMetadataType.data) {
    const totalSize = d['total_size'];
    if (!isInt(totalSize) || totalSize < 0) {
      throw new WireError('ut_metadata: data without a valid total_size');
    }
    const data = payload.subarray(end);
    if (data.length > METADATA_PIECE_SIZE) {
      throw new WireError(`ut_metadata: data piece of ${data.length} bytes is too long`);
    }
    return { type: 'data', piece, totalSize, data };
  }
  if (end !== payload.length) {
    throw new WireError(`ut_metadata: ${payload.length - end} bytes after the dictionary`);
  }
  return msgType === UtMetadataType.request
    ? { type: 'request', piece }
    : { type: 'reject', piece };
}

/**
 * The answer to a peer's `request` for piece `piece`: its data when we have the metadata
 * (`info`, the exact info dictionary bytes) and the piece exists, else a `reject`.
 */
export function answerMetadataRequest(info: Buffer | null, piece: number): UtMetadataMessage {
  if (info === null || info.length === 0 || piece < 0 || piece >= metadataPieceCount(info.length)) {
    return { type: 'reject', piece };
  }
  const start = piece * METADATA_PIECE_SIZE;
  return {
    type: 'data',
    piece,
    totalSize: info.length,
    data: info.subarray(start, start + metadataPieceLength(info.length, piece)),
  };
}

/** Times one peer connection is sent the same metadata piece; later requests are rejected. */
export const MAX_SERVES_PER_PIECE = 2;

/**
 * Serving metadata to one peer connection: `answerMetadataRequest`, but each piece is sent
 * at most MAX_SERVES_PER_PIECE times, so a peer repeating requests cannot make us send more
 * than twice the metadata (each 50-byte request would otherwise cost 16 KiB of output).
 */
export class MetadataServer {
  readonly #served = new Map<number, number>();

  /** The answer to a `request` for `piece`, given the info bytes once known (else null). */
  answer(info: Buffer | null, piece: number): UtMetadataMessage {
    const m = answerMetadataRequest(info, piece);
    if (m.type !== 'data') return m;
    const n = this.#served.get(piece) ?? 0;
    if (n >= MAX_SERVES_PER_PIECE) return { type: 'reject', piece };
    this.#served.set(piece, n + 1);
    return m;
  }
}
