/**
 * How many block requests to keep in flight to one peer.
 *
 * The queue should cover the time between sending a request and getting the block back:
 * depth ≈ rate × TARGET_QUEUE_SECONDS / BLOCK_SIZE, bounded by MIN_DEPTH and MAX_DEPTH. A new
 * peer's rate is unknown, so the depth starts at INITIAL_DEPTH and grows by one for every block
 * received (doubling per round trip, like TCP slow start) until a one-second sample shows the rate
 * no longer growing by SLOW_START_GAIN; from then on the depth follows the measured rate.
 * TARGET_QUEUE_SECONDS must exceed the round trip of peers that answer in bursts (transmission's
 * bandwidth ticks), or their depth and measured rate shrink each other down to MIN_DEPTH.
 */
import { BLOCK_SIZE } from '../wire/messages.js';

export const INITIAL_DEPTH = 16;
export const MIN_DEPTH = 4;
/** Also the cap on outstanding requests per peer. */
export const MAX_DEPTH = 256;
export const TARGET_QUEUE_SECONDS = 2;
export const SLOW_START_GAIN = 1.1;

export class Pipeline {
  depth = INITIAL_DEPTH;
  slowStart = true;
  /** Bytes per second over the last sample. */
  rate = 0;
  private bytesInSample = 0;
  private sampleStart: number;

  constructor(now = Date.now()) {
    this.sampleStart = now;
  }

  onBlock(bytes: number): void {
    this.bytesInSample += bytes;
    if (this.slowStart && this.depth < MAX_DEPTH) this.depth++;
  }

  /** Call about once a second. */
  tick(now = Date.now()): void {
    const secs = (now - this.sampleStart) / 1000;
    if (secs < 0.25) return;
    const rate = this.bytesInSample / secs;
    this.bytesInSample = 0;
    this.sampleStart = now;
    if (this.slowStart && rate > 0 && rate < this.rate * SLOW_START_GAIN) this.slowStart = false;
    this.rate = this.rate === 0 ? rate : 0.5 * this.rate + 0.5 * rate;
    if (!this.slowStart) {
      const want = Math.ceil((this.rate * TARGET_QUEUE_SECONDS) / BLOCK_SIZE);
      this.depth = Math.max(MIN_DEPTH, Math.min(MAX_DEPTH, want));
    }
  }

  /** The peer stopped sending (snubbed): back to the floor, measure again. */
  snubbed(): void {
    this.depth = MIN_DEPTH;
    this.slowStart = false;
    this.rate = 0;
  }
}
