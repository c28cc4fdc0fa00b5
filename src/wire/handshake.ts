/**
 * BitTorrent handshake: <pstrlen=19><"BitTorrent protocol"><8 reserved><20 info hash><20 peer id>.
 */
import { WireError } from '../errors.js';

export const PROTOCOL = 'BitTorrent protocol';
export const HANDSHAKE_LENGTH = 68;

const PSTR = Buffer.from(PROTOCOL, 'latin1');
const PSTRLEN = PSTR.length; // 19
const RESERVED_OFFSET = 1 + PSTRLEN; // 20
const INFO_HASH_OFFSET = RESERVED_OFFSET + 8; // 28
const PEER_ID_OFFSET = INFO_HASH_OFFSET + 20; // 48

export interface Handshake {
  infoHash: Buffer;
  peerId: Buffer;
  reserved: Buffer;
}

/** Builds a 68-byte handshake. `reserved` defaults to eight zero bytes. */
export function encodeHandshake(infoHash: Buffer, peerId: Buffer, reserved?: Buffer): Buffer {
  if (infoHash.length !== 20) throw new RangeError('info hash must be 20 bytes');
  if (peerId.length !== 20) throw new RangeError('peer id must be 20 bytes');
  if (reserved !== undefined && reserved.length !== 8) {
    throw new RangeError('reserved must be 8 bytes');
  }
  const out = Buffer.alloc(HANDSHAKE_LENGTH);
  out[0] = PSTRLEN;
  PSTR.copy(out, 1);
  if (reserved) reserved.copy(out, RESERVED_OFFSET);
  infoHash.copy(out, INFO_HASH_OFFSET);
  peerId.copy(out, PEER_ID_OFFSET);
  return out;
}

/**
 * Decodes a handshake at the start of `buf`. Returns null while fewer than 68 bytes are
 * available; throws WireError as soon as the bytes seen so far cannot start a valid handshake
 * (wrong pstrlen or protocol string). The returned buffers are copies (safe to keep).
 */
export function decodeHandshake(buf: Buffer): Handshake | null {
  if (buf.length === 0) return null;
  if (buf[0] !== PSTRLEN) {
    throw new WireError(`handshake: protocol string length ${buf[0]}, expected ${PSTRLEN}`);
  }
  const seen = Math.min(buf.length, RESERVED_OFFSET);
  if (buf.compare(PSTR, 0, seen - 1, 1, seen) !== 0) {
    throw new WireError('handshake: protocol string is not "BitTorrent protocol"');
  }
  if (buf.length < HANDSHAKE_LENGTH) return null;
  return {
    reserved: Buffer.from(buf.subarray(RESERVED_OFFSET, INFO_HASH_OFFSET)),
    infoHash: Buffer.from(buf.subarray(INFO_HASH_OFFSET, PEER_ID_OFFSET)),
    peerId: Buffer.from(buf.subarray(PEER_ID_OFFSET, HANDSHAKE_LENGTH)),
  };
}

/** Reserved bits we use: BEP 10 (extension protocol) is byte 5 bit 0x10, BEP 6 (fast) byte 7 bit 0x04. */
export const RESERVED_EXTENDED = { byte: 5, bit: 0x10 } as const;
export const RESERVED_FAST = { byte: 7, bit: 0x04 } as const;

/** The reserved bytes tdl sends: the extension protocol and the fast extension. */
export function ourReserved(): Buffer {
  const r = Buffer.alloc(8);
  r[RESERVED_EXTENDED.byte]! |= RESERVED_EXTENDED.bit;
  r[RESERVED_FAST.byte]! |= RESERVED_FAST.bit;
  return r;
}

export function supports(reserved: Buffer, flag: { byte: number; bit: number }): boolean {
  return reserved.length === 8 && (reserved[flag.byte]! & flag.bit) !== 0;
}
