import { randomBytes } from 'node:crypto';
import { VERSION } from '../version.js';

const VERSION_DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/**
 * An Azureus-style client prefix: `-`, the client's two letters, four version characters (major,
 * minor, patch, then `0`; each number as one of 0-9 then A-Z, 35 at most), `-`.
 * `azureusPrefix('TD', '0.1.0')` is `-TD0100-`.
 */
export function azureusPrefix(client: string, version: string): string {
  const parts = version.split(/[.+-]/).slice(0, 3);
  let v = '';
  for (let i = 0; i < 3; i++) {
    const n = Number(parts[i] ?? 0);
    v += VERSION_DIGITS[Number.isInteger(n) && n >= 0 ? Math.min(n, 35) : 0];
  }
  return `-${client}${v}0-`;
}

/** tdl's prefix, from the package version (the start `-TD` is what other tdl peers look for). */
export const PEER_ID_PREFIX = azureusPrefix('TD', VERSION);
const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** A 20-byte peer id: the client prefix and 12 random alphanumerics. */
export function makePeerId(): Buffer {
  const rnd = randomBytes(12);
  let s = PEER_ID_PREFIX;
  for (const b of rnd) s += ALPHABET[b % ALPHABET.length];
  return Buffer.from(s, 'latin1');
}
