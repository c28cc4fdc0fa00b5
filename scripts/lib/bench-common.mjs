// @ts-check
/** Small helpers shared by the benchmark scenarios under scripts/lib/. */
import { missingPrograms } from './real-peers.mjs';

/**
 * The median (the mean of the middle two for an even count). NaN for none: no figure, and no
 * target check passes on it (a 0 would pass every "at most" check of a client that never ran).
 * @param {number[]} xs
 */
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

/** @param {number} ms milliseconds as seconds, two decimals */
export const sec = (ms) => (ms / 1000).toFixed(2);

/**
 * Throws, naming the Debian packages to install, when any of these programs is missing.
 * @param {string[]} names
 */
export function requirePrograms(names) {
  const missing = missingPrograms(names);
  if (missing.length > 0) {
    throw new Error(
      `missing ${missing.map((m) => m.name).join(', ')}: apt-get install -y ` +
        missing.map((m) => m.pkg).join(' '),
    );
  }
}
