/**
 * Per-address token bucket for the queries we answer. Each address may send BURST queries at
 * once and RATE_PER_S per second after that; extra queries are dropped unanswered. At most
 * MAX_TRACKED addresses are remembered (the oldest is forgotten first), so memory is bounded
 * whatever the number of senders. Time comes from `now`.
 */
import { makeRoom } from '../bounded.js';

export interface RateLimitOptions {
  burst?: number;
  ratePerSecond?: number;
  maxTracked?: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly burst: number;
  private readonly rate: number;
  private readonly maxTracked: number;

  constructor(
    opts: RateLimitOptions = {},
    private readonly now: () => number = Date.now,
  ) {
    this.burst = opts.burst ?? 20;
    this.rate = opts.ratePerSecond ?? 5;
    this.maxTracked = opts.maxTracked ?? 4096;
  }

  /** True when `key` may be answered now (and takes one token). */
  allow(key: string): boolean {
    const t = this.now();
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key); // re-inserted below: Map order is least recently used first
      b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.rate);
      b.at = t;
    } else {
      b = { tokens: this.burst, at: t };
      makeRoom(this.buckets, this.maxTracked);
    }
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  tracked(): number {
    return this.buckets.size;
  }
}
