/**
 * What counts as progress for `--timeout` and for starvation, over every source of one download.
 *
 * Progress is a verified piece, a block received, or a web seed piece stored. Bytes still
 * arriving count too, once there are enough of them (TRICKLE_MIN_BYTES since the last progress):
 * a peer whose blocks each take longer than `--timeout` keeps the download alive while its bytes
 * flow, while one that trickles a byte now and then without ever completing a block does not (it
 * held a download forever at 0 %). So do web seed bytes: a piece may take a slow server longer
 * than `--timeout`. While `--max-download-rate` holds the sockets unread the wait is ours, not
 * the peers': it is no stall (a low limit after a first read's burst ended healthy downloads
 * with exit 5).
 */

/**
 * No data for this long, whatever the peers connected (none has a piece we need, each chokes
 * us, or those that unchoke us send nothing): more addresses are asked for and failed ones are
 * tried again, as when no peer is connected at all.
 */
export const STARVED_MS = 5_000;
/**
 * Bytes of blocks still arriving (and of web seed pieces) that count as progress, summed over
 * every source since the last progress.
 */
export const TRICKLE_MIN_BYTES = 1024;

export class ProgressWatch {
  /** The last progress (ms since the epoch). */
  private lastAt: number;
  /** Bytes counted since `trickleSince` (the last progress): see TRICKLE_MIN_BYTES. */
  private trickled = 0;
  private trickleSince = 0;
  /** Web seed bytes at the last tick. */
  private webBytesSeen = 0;

  constructor(now: number) {
    this.lastAt = now;
  }

  /** The process did not run for `gapMs` (see RequestScheduler.paused): not a stall. */
  paused(gapMs: number): void {
    this.lastAt += gapMs;
  }

  /** A piece verified or stored, or a block received. */
  progress(now: number): void {
    this.lastAt = now;
  }

  /**
   * At each tick: `blockBytes` of blocks arrived since the last tick over every peer, and the
   * web seeds' running total of bytes that count (WebSeeds.progressBytes); `held` when the
   * download limit keeps the sockets unread.
   */
  tick(now: number, blockBytes: number, webBytesTotal: number, held: boolean): void {
    if (this.trickleSince !== this.lastAt) {
      this.trickleSince = this.lastAt;
      this.trickled = 0;
    }
    this.trickled += blockBytes + webBytesTotal - this.webBytesSeen;
    this.webBytesSeen = webBytesTotal;
    if (this.trickled >= TRICKLE_MIN_BYTES || held) this.lastAt = now;
  }

  /** No progress for STARVED_MS. */
  starving(now: number): boolean {
    return now - this.lastAt >= STARVED_MS;
  }

  /** No progress for longer than `timeoutMs` (`--timeout`). */
  stalled(now: number, timeoutMs: number): boolean {
    return now - this.lastAt > timeoutMs;
  }
}
