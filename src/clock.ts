/**
 * Milliseconds on a monotonic clock, for intervals: what `performance.now()` gives, from another
 * origin. The global `performance` loads node:perf_hooks (nine modules, about 1 ms) at its first
 * use, on the start-up path of every command; `process.hrtime` is there already.
 */
export function monotonicMs(): number {
  const [s, ns] = process.hrtime();
  return s * 1000 + ns / 1e6;
}
