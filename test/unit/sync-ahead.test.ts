/**
 * When a download checkpoints and syncs ahead (src/swarm/sync-schedule.ts, docs/DESIGN.md
 * "Syncing ahead"): a checkpoint every 64 MiB, and syncs ahead near the end only, halving what the
 * final sync will find dirty, never in steps under 4 MiB.
 */
import { describe, expect, it } from 'vitest';
import {
  CHECKPOINT_BYTES,
  SYNC_AHEAD_MIN_BYTES,
  SyncSchedule,
} from '../../src/swarm/sync-schedule.js';

const MiB = 1024 * 1024;

/**
 * Where a download of `total` bytes in pieces of `piece` checkpoints and syncs ahead (bytes done
 * at each), every checkpoint it asks for starting at once.
 */
function steps(total: number, piece: number, syncsAhead = true) {
  const schedule = new SyncSchedule(syncsAhead);
  const checkpoints: number[] = [];
  const syncs: number[] = [];
  for (let done = 0; done < total;) {
    const size = Math.min(piece, total - done);
    done += size;
    const step = schedule.written(size, total - done);
    if (step === 'checkpoint') {
      checkpoints.push(done);
      schedule.checkpointed();
    } else if (step === 'sync-ahead') syncs.push(done);
  }
  return { checkpoints, syncs };
}

describe('syncing ahead', () => {
  it('32 MiB from scratch: at 16, 24 and 28 MiB', () => {
    expect(steps(32 * MiB, 256 * 1024).syncs).toEqual([16 * MiB, 24 * MiB, 28 * MiB]);
  });

  it('256 MiB: a checkpoint every 64 MiB, syncs only in the last stretch after the last one', () => {
    const { checkpoints, syncs } = steps(256 * MiB, 256 * 1024);
    expect(checkpoints).toEqual([64 * MiB, 128 * MiB, 192 * MiB, 256 * MiB]);
    expect(syncs).toEqual([224 * MiB, 240 * MiB, 248 * MiB, 252 * MiB]);
  });

  it('never for 4 MiB or less, nor in steps under 4 MiB, nor once nothing is missing', () => {
    expect(steps(4 * MiB, 256 * 1024).syncs).toEqual([]);
    expect(steps(6 * MiB, 256 * 1024).syncs).toEqual([4 * MiB]);
    const at = (sinceSync: number, missing: number) =>
      new SyncSchedule(true).written(sinceSync, missing);
    expect(at(SYNC_AHEAD_MIN_BYTES - 1, 1)).toBe(null);
    expect(at(SYNC_AHEAD_MIN_BYTES, SYNC_AHEAD_MIN_BYTES)).toBe('sync-ahead');
    expect(at(SYNC_AHEAD_MIN_BYTES, SYNC_AHEAD_MIN_BYTES + 1)).toBe(null);
    expect(at(SYNC_AHEAD_MIN_BYTES, 0)).toBe(null);
  });

  it('a checkpoint asked for is asked for again until one starts, and resets the sync count', () => {
    const schedule = new SyncSchedule(true);
    expect(schedule.written(CHECKPOINT_BYTES, 100 * MiB)).toBe('checkpoint');
    expect(schedule.written(MiB, 99 * MiB)).toBe('checkpoint');
    schedule.checkpointed();
    expect(schedule.written(MiB, 4 * MiB)).toBe(null);
  });

  it('nothing synced ahead where the copy is not (a stream)', () => {
    expect(steps(32 * MiB, 256 * 1024, false).syncs).toEqual([]);
  });
});
