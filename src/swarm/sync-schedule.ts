/**
 * When a download writes a checkpoint of its resume file, and when it syncs ahead, counted in
 * verified bytes (the timer's checkpoints are the client's). Pure: the client tells it each piece
 * and each checkpoint it started, and does what it answers (docs/DESIGN.md, "Syncing ahead").
 */

/** A checkpoint of the resume file as soon as this much new data was written since the last. */
export const CHECKPOINT_BYTES = 64 * 1024 * 1024;
/**
 * Near the end of a download, what is written is synced ahead each time at least this much, and
 * at least as much as is still missing, was written since the last sync.
 */
export const SYNC_AHEAD_MIN_BYTES = 4 * 1024 * 1024;

export type SyncStep = 'checkpoint' | 'sync-ahead' | null;

export class SyncSchedule {
  /** Bytes verified since the last checkpoint started, and since the last sync started. */
  private sinceCheckpoint = 0;
  private sinceSync = 0;

  /** `syncsAhead`: false where nothing is synced ahead (a stream's working copy). */
  constructor(private readonly syncsAhead: boolean) {}

  /**
   * A piece of `size` bytes was verified and written, `missing` wanted bytes still to come. A
   * checkpoint once CHECKPOINT_BYTES came since the last (asked again at each piece until one
   * starts); else a sync ahead each time the end's sync would otherwise find at least half of
   * what is left dirty: 32 MiB from scratch at 16, 24 and 28 MiB. Never a sync ahead once
   * nothing is missing: the completion path syncs.
   */
  written(size: number, missing: number): SyncStep {
    this.sinceCheckpoint += size;
    this.sinceSync += size;
    if (this.sinceCheckpoint >= CHECKPOINT_BYTES) return 'checkpoint';
    if (
      !this.syncsAhead ||
      missing <= 0 ||
      this.sinceSync < SYNC_AHEAD_MIN_BYTES ||
      this.sinceSync < missing
    ) {
      return null;
    }
    this.sinceSync = 0;
    return 'sync-ahead';
  }

  /** A checkpoint started: it syncs everything written so far. */
  checkpointed(): void {
    this.sinceCheckpoint = 0;
    this.sinceSync = 0;
  }
}
