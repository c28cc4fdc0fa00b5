/**
 * The resume file's checkpoints while a download runs (client.ts): one every
 * CHECKPOINT_INTERVAL_MS and one each time the schedule asks (SyncSchedule: CHECKPOINT_BYTES
 * written since the last), never two at once, none once every piece is written (the completion
 * path then writes the complete one itself); and near the end, syncs ahead. A file changed under
 * tdl (OutputChangedError) ends the download; any other failure to save is one warning, and the
 * download goes on.
 */
import type { ResumeWriter } from '../storage/checkpoint.js';
import { OutputChangedError } from '../storage/stamps.js';
import type { Download } from './download.js';
import { SyncSchedule } from './sync-schedule.js';

/**
 * A checkpoint of the resume file is written this often while data arrives (when there is
 * something new to record), and as soon as CHECKPOINT_BYTES came since the last one.
 */
export const CHECKPOINT_INTERVAL_MS = 3_000;

export interface CheckpointingOptions {
  writer: ResumeWriter;
  download: Download;
  /** Starts a sync of what is written so far, and returns at once (DiskStorage.syncAhead). */
  syncAhead: () => void;
  /** False where nothing is synced ahead (a stream's working copy: it is removed at its end). */
  syncsAhead: boolean;
  /** The download's own signal: no checkpoint starts once it is aborted. */
  signal: AbortSignal;
  /** Ends the download with this error. */
  abort: (e: Error) => void;
}

export class Checkpointing {
  private readonly schedule: SyncSchedule;
  private timer: NodeJS.Timeout | null = null;
  private warned = false;

  constructor(private readonly o: CheckpointingOptions) {
    this.schedule = new SyncSchedule(o.syncsAhead);
  }

  /** Checkpoints on the clock from now on. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.kick(), CHECKPOINT_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Piece `index`, `size` bytes, was written. */
  written(index: number, size: number): void {
    this.o.writer.markWritten(index);
    const step = this.schedule.written(size, this.o.download.missing);
    if (step === 'checkpoint') this.kick();
    // Half of what is left to sync at the end starts now: the sync before the complete
    // checkpoint finds the last few megabytes only (docs/DESIGN.md, "Syncing ahead").
    else if (step === 'sync-ahead') this.o.syncAhead();
  }

  private kick(): void {
    const { writer, download, signal } = this.o;
    if (writer.busy || !writer.stale || signal.aborted || download.allWritten) return;
    this.schedule.checkpointed();
    writer.checkpoint().catch((e: unknown) => {
      if (e instanceof OutputChangedError) this.o.abort(e);
      else if (!this.warned) {
        this.warned = true;
        download.emit('warning', `cannot save resume data: ${(e as Error).message}`);
      }
    });
  }
}
