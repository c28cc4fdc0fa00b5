import { randomBytes } from 'node:crypto';

/** Azureus-style client prefix: `-TD` + version 0100 + `-`. */
export const PEER_ID_PREFIX = '-TD0100-';
const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** A 20-byte peer id: the client prefix and 12 random alphanumerics. */
export function makePeerId(): Buffer {
  const rnd = randomBytes(12);
  let s = PEER_ID_PREFIX;
  for (const b of rnd) s += ALPHABET[b % ALPHABET.length];
  return Buffer.from(s, 'latin1');
}
