/**
 * `--max-upload-rate` / `--max-download-rate` values: a number of bytes per second with an
 * optional binary prefix, as commander argument parsers.
 *
 *   1000  1000B  500K  500KiB  500KB  2M  1.5M  1G  1T  2M/s   →  bytes per second
 *   0 (any unit)                                               →  unlimited
 *
 * K, M, G, T are powers of 1024 (any case; "KiB" and "KB" mean the same). A lowercase "b"
 * (bits) is refused rather than guessed. The result is rounded to a whole byte per second.
 */
import { InvalidArgumentError } from 'commander';

/** Largest accepted rate: 1 TiB/s. */
export const MAX_RATE = 1024 ** 4;

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
const FORM = /^(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?(\/s)?$/i;

export function parseRate(s: string): number {
  const text = s.trim();
  const shown = JSON.stringify(s);
  if (text.startsWith('-')) throw new InvalidArgumentError(`rate ${shown} must not be negative`);
  const m = FORM.exec(text);
  // "iB" belongs to a prefix (KiB): alone it is no unit ("1iB").
  if (m === null || (m[2] === '' && /^i/i.test(m[3] ?? ''))) {
    throw new InvalidArgumentError(
      `${shown} is not a rate: use bytes per second like 1000, 500K, 2M or 1.5M (0 = unlimited)`,
    );
  }
  const [, num, prefix, bytes] = m;
  if (bytes !== undefined && bytes.endsWith('b')) {
    throw new InvalidArgumentError(`rate ${shown}: "b" would be bits; write B for bytes`);
  }
  const value = Number(num) * UNITS[prefix!.toLowerCase()]!;
  if (!Number.isFinite(value) || value > MAX_RATE) {
    throw new InvalidArgumentError(`rate ${shown} is above the maximum of 1T (1 TiB/s)`);
  }
  const rate = Math.round(value);
  if (value > 0 && value < 1) {
    throw new InvalidArgumentError(`rate ${shown} is below 1 byte per second (0 = unlimited)`);
  }
  return rate;
}
