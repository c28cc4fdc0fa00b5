// @ts-check
/** Small helpers shared by the benchmark scenarios under scripts/lib/. */
import { missingPrograms } from './real-peers.mjs';

/**
 * The median (the mean of the middle two for an even count; 0 for none).
 * @param {number[]} xs
 */
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? (s[(n - 1) / 2] ?? 0) : ((s[n / 2 - 1] ?? 0) + (s[n / 2] ?? 0)) / 2;
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
