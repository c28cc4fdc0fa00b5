/**
 * DHT node ids and the XOR metric (BEP 5). Ids and info hashes are 20-byte Buffers. Pure.
 */
import { randomBytes } from 'node:crypto';

export const ID_LENGTH = 20;
export const ID_BITS = ID_LENGTH * 8;

export function randomId(): Buffer {
  return randomBytes(ID_LENGTH);
}

/** XOR distance of two ids, as 20 bytes (compare with Buffer.compare). */
export function distance(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(ID_LENGTH);
  for (let i = 0; i < ID_LENGTH; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** < 0 when `a` is closer to `target` than `b`, > 0 when farther, 0 when equally far. */
export function compareDistance(target: Buffer, a: Buffer, b: Buffer): number {
  for (let i = 0; i < ID_LENGTH; i++) {
    const da = a[i]! ^ target[i]!;
    const db = b[i]! ^ target[i]!;
    if (da !== db) return da - db;
  }
  return 0;
}

/**
 * Number of leading bits `a` and `b` share (0..160). The routing table keeps one bucket per
 * value, so the bucket of `id` in a table owned by `self` is `commonPrefixBits(self, id)`.
 */
export function commonPrefixBits(a: Buffer, b: Buffer): number {
  for (let i = 0; i < ID_LENGTH; i++) {
    const x = a[i]! ^ b[i]!;
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return ID_BITS;
}

/** A random id sharing exactly `bits` leading bits with `self` (to refresh bucket `bits`). */
export function randomIdInBucket(self: Buffer, bits: number): Buffer {
  const id = randomId();
  if (bits >= ID_BITS) return Buffer.from(self);
  const byte = bits >> 3;
  const bit = bits & 7;
  self.copy(id, 0, 0, byte);
  const keep = (0xff00 >> bit) & 0xff; // the first `bit` bits come from self
  const flip = 0x80 >> bit; // the next bit differs from self
  id[byte] = (self[byte]! & keep) | (~self[byte]! & flip) | (id[byte]! & ~(keep | flip) & 0xff);
  return id;
}
