/**
 * When a download syncs ahead (src/swarm/client.ts, docs/DESIGN.md "Syncing ahead"): near the
 * end only, halving what the final sync will find dirty, never in steps under 4 MiB.
 */
import { describe, expect, it } from 'vitest';
import { CHECKPOINT_BYTES, SYNC_AHEAD_MIN_BYTES, syncAheadDue } from '../../src/swarm/client.js';

const MiB = 1024 * 1024;

/** Where a download of `total` bytes in pieces of `piece` syncs ahead (bytes done at each). */
function syncPoints(total: number, piece: number): number[] {
  const points: number[] = [];
  let done = 0;
  let sinceSync = 0;
  let sinceCheckpoint = 0;
  while (done < total) {
    const size = Math.min(piece, total - done);
    done += size;
    sinceSync += size;
    sinceCheckpoint += size;
    if (done === total) break;
    if (sinceCheckpoint >= CHECKPOINT_BYTES) {
      // A checkpoint syncs everything written so far.
      sinceCheckpoint = 0;
      sinceSync = 0;
    } else if (syncAheadDue(sinceSync, total - done)) {
      points.push(done);
      sinceSync = 0;
    }
  }
  return points;
}

describe('syncing ahead', () => {
  it('32 MiB from scratch: at 16, 24 and 28 MiB', () => {
    expect(syncPoints(32 * MiB, 256 * 1024)).toEqual([16 * MiB, 24 * MiB, 28 * MiB]);
  });

  it('256 MiB: only in the last stretch after the last checkpoint', () => {
    const points = syncPoints(256 * MiB, 256 * 1024);
    expect(points).toEqual([224 * MiB, 240 * MiB, 248 * MiB, 252 * MiB]);
  });

  it('never for 4 MiB or less, nor in steps under 4 MiB', () => {
    expect(syncPoints(4 * MiB, 256 * 1024)).toEqual([]);
    expect(syncPoints(6 * MiB, 256 * 1024)).toEqual([4 * MiB]);
    expect(syncAheadDue(SYNC_AHEAD_MIN_BYTES - 1, 0)).toBe(false);
    expect(syncAheadDue(SYNC_AHEAD_MIN_BYTES, SYNC_AHEAD_MIN_BYTES)).toBe(true);
    expect(syncAheadDue(SYNC_AHEAD_MIN_BYTES, SYNC_AHEAD_MIN_BYTES + 1)).toBe(false);
  });
});
