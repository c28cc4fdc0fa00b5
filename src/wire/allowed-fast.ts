/**
 * BEP 6's allowed fast set: the pieces a peer may download from us while we choke it. The set
 * is canonical, a function of the peer's /24 and the info hash only, so that a peer gets the
 * same few pieces however often it reconnects and from whichever address of its network:
 *
 *   x = (ip & 0xffffff00) as 4 bytes, then the info hash
 *   until k indices: x = SHA1(x); each of its five 4-byte words (big-endian) mod the piece
 *   count is added unless already there
 *
 * BEP 6 defines it for IPv4 only: an IPv6 peer (other than an IPv4-mapped address) gets none.
 */
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';

/** The first `k` pieces (at most the piece count) of the allowed fast set for a peer at `host`. */
export function allowedFastSet(
  host: string,
  infoHash: Buffer,
  pieceCount: number,
  k: number,
): number[] {
  const v4 = host.toLowerCase().startsWith('::ffff:') ? host.slice(7) : host;
  if (!isIPv4(v4) || pieceCount <= 0) return [];
  const want = Math.min(k, pieceCount);
  const octets = v4.split('.').map(Number);
  let x = Buffer.concat([Buffer.from([octets[0]!, octets[1]!, octets[2]!, 0]), infoHash]);
  const set: number[] = [];
  while (set.length < want) {
    x = createHash('sha1').update(x).digest();
    for (let j = 0; j < 20 && set.length < want; j += 4) {
      const index = x.readUInt32BE(j) % pieceCount;
      if (!set.includes(index)) set.push(index);
    }
  }
  return set;
}
