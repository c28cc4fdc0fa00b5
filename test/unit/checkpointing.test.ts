/**
 * When the resume file is checkpointed during a download (swarm/checkpointing.ts): on the clock,
 * after CHECKPOINT_BYTES, never two at once nor once every piece is written; what a failure does.
 */
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ResumeWriter } from '../../src/storage/checkpoint.js';
import { OutputChangedError } from '../../src/storage/stamps.js';
import { CHECKPOINT_INTERVAL_MS, Checkpointing } from '../../src/swarm/checkpointing.js';
import type { Download } from '../../src/swarm/download.js';
import { CHECKPOINT_BYTES } from '../../src/swarm/sync-schedule.js';

const MiB = 1024 * 1024;

class FakeWriter {
  busy = false;
  stale = true;
  marked: number[] = [];
  checkpoints = 0;
  fail: Error | null = null;
  markWritten(i: number): void {
    this.marked.push(i);
  }
  checkpoint(): Promise<void> {
    this.checkpoints++;
    return this.fail ? Promise.reject(this.fail) : Promise.resolve();
  }
}

function setUp(syncsAhead = true) {
  const writer = new FakeWriter();
  const download = Object.assign(new EventEmitter(), { missing: 512 * MiB, allWritten: false });
  const warnings: string[] = [];
  download.on('warning', (m: string) => warnings.push(m));
  const ctl = new AbortController();
  let syncs = 0;
  const cp = new Checkpointing({
    writer: writer as unknown as ResumeWriter,
    download: download as unknown as Download,
    syncAhead: () => syncs++,
    syncsAhead,
    signal: ctl.signal,
    abort: (e) => ctl.abort(e),
  });
  return { writer, download, warnings, ctl, cp, syncs: () => syncs };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('Checkpointing', () => {
  it('checkpoints once CHECKPOINT_BYTES were written, and records each piece', () => {
    const { writer, cp } = setUp();
    const piece = 4 * MiB;
    for (let i = 0; i < CHECKPOINT_BYTES / piece - 1; i++) cp.written(i, piece);
    expect(writer.checkpoints).toBe(0);
    cp.written(99, piece);
    expect(writer.checkpoints).toBe(1);
    expect(writer.marked).toHaveLength(CHECKPOINT_BYTES / piece);
  });

  it('checkpoints on the clock, only when there is something new and none is under way', () => {
    const { writer, cp } = setUp();
    cp.start();
    vi.advanceTimersByTime(CHECKPOINT_INTERVAL_MS);
    expect(writer.checkpoints).toBe(1);
    writer.busy = true;
    vi.advanceTimersByTime(CHECKPOINT_INTERVAL_MS);
    writer.busy = false;
    writer.stale = false;
    vi.advanceTimersByTime(CHECKPOINT_INTERVAL_MS);
    expect(writer.checkpoints).toBe(1);
    cp.stop();
    writer.stale = true;
    vi.advanceTimersByTime(10 * CHECKPOINT_INTERVAL_MS);
    expect(writer.checkpoints).toBe(1);
  });

  it('leaves the last checkpoint to the completion path once every piece is written', () => {
    const { writer, download, cp } = setUp();
    download.allWritten = true;
    cp.start();
    vi.advanceTimersByTime(CHECKPOINT_INTERVAL_MS);
    cp.written(0, CHECKPOINT_BYTES);
    expect(writer.checkpoints).toBe(0);
    cp.stop();
  });

  it('syncs ahead near the end, except for a stream', () => {
    const near = setUp();
    near.download.missing = 8 * MiB;
    near.cp.written(0, 8 * MiB);
    expect(near.syncs()).toBe(1);
    const stream = setUp(false);
    stream.download.missing = 8 * MiB;
    stream.cp.written(0, 8 * MiB);
    expect(stream.syncs()).toBe(0);
  });

  it('a file changed under tdl ends the download; another failure is one warning', async () => {
    const changed = setUp();
    changed.writer.fail = new OutputChangedError('x.bin was removed during the download');
    changed.cp.written(0, CHECKPOINT_BYTES);
    await vi.waitFor(() => expect(changed.ctl.signal.aborted).toBe(true));
    expect(changed.ctl.signal.reason).toBe(changed.writer.fail);

    const full = setUp();
    full.writer.fail = new Error('ENOSPC: no space left on device');
    full.cp.written(0, CHECKPOINT_BYTES);
    full.cp.written(1, CHECKPOINT_BYTES);
    await vi.waitFor(() => expect(full.warnings).toHaveLength(1));
    await Promise.resolve();
    expect(full.warnings).toEqual(['cannot save resume data: ENOSPC: no space left on device']);
    expect(full.ctl.signal.aborted).toBe(false);
    expect(full.writer.checkpoints).toBe(2);
  });
});
