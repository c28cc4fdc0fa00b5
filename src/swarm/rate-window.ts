/**
 * Bytes over a sliding time window: what a peer sent us in the last 20 s (the choker's view),
 * what we sent it, and the download's and upload's rates over the last 3 s.
 *
 * Samples closer than SAMPLE_MS to the last one are added to it, so the list stays short at any
 * rate (at most `keepMs / SAMPLE_MS + 1` entries); samples older than `keepMs` are dropped as new
 * ones come and whenever the window is read.
 */

/** Samples this close together are kept as one. */
export const SAMPLE_MS = 100;

export class RateWindow {
  private readonly samples: { t: number; bytes: number }[] = [];

  /** `keepMs`: the longest span ever asked about. */
  constructor(readonly keepMs: number) {}

  add(now: number, bytes: number): void {
    const last = this.samples[this.samples.length - 1];
    if (last && now - last.t < SAMPLE_MS) last.bytes += bytes;
    else this.samples.push({ t: now, bytes });
    this.prune(now);
  }

  /** Bytes added in the last `windowMs` (at most `keepMs`). */
  sum(now: number, windowMs = this.keepMs): number {
    this.prune(now);
    const since = now - windowMs;
    let n = 0;
    for (const s of this.samples) if (s.t >= since) n += s.bytes;
    return n;
  }

  /**
   * When bytes were last added; 0 once the window holds none (old samples go when bytes are
   * added or the window is summed, not when this is read).
   */
  get lastAt(): number {
    return this.samples[this.samples.length - 1]?.t ?? 0;
  }

  private prune(now: number): void {
    const horizon = now - this.keepMs;
    let k = 0;
    while (k < this.samples.length && this.samples[k]!.t < horizon) k++;
    if (k > 0) this.samples.splice(0, k);
  }
}
