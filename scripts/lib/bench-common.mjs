// @ts-check
/** Small helpers shared by the benchmark scenarios under scripts/lib/. */
import { spawnSync } from 'node:child_process';
import { compareTrees, makeTempDir, missingPrograms, removeTempDir } from './real-peers.mjs';

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

/**
 * Runs every row `runs` times, the order rotated each round so that no row always comes first
 * (or right after another). Each run starts with `sync` (no dirty pages of the one before) and
 * gets a fresh output folder, `tmpPrefix…`, removed after it.
 * @template R
 * @param {R[]} rows
 * @param {number} runs
 * @param {string} tmpPrefix
 * @param {(row: R, out: string, run: number) => Promise<void>} measure
 */
export async function rotatedRuns(rows, runs, tmpPrefix, measure) {
  for (let run = 0; run < runs; run++) {
    for (let i = 0; i < rows.length; i++) {
      const row = /** @type {R} */ (rows[(i + run) % rows.length]);
      spawnSync('sync');
      const out = await makeTempDir(tmpPrefix);
      try {
        await measure(row, out, run);
      } finally {
        await removeTempDir(out);
      }
    }
  }
}

/**
 * Throws unless the download of row `id` under `actual` is byte for byte the tree at `expected`.
 * @param {string} id
 * @param {string} expected
 * @param {string} actual
 */
export async function assertSameTree(id, expected, actual) {
  const diffs = await compareTrees(expected, actual);
  if (diffs.length > 0) throw new Error(`${id} wrote wrong data: ${diffs.slice(0, 5).join('; ')}`);
}
