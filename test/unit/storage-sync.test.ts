/**
 * When syncfs cannot be used or fails (`sync -f` missing, an I/O error), a checkpoint falls back
 * to one fdatasync per file, reopening files that left the pool, and still records every piece.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startupCheck } from '../../src/storage/check.js';
import { ResumeWriter } from '../../src/storage/checkpoint.js';
import { DiskStorage } from '../../src/storage/disk.js';
import { resumePath } from '../../src/storage/names.js';
import { planOutput } from '../../src/storage/output.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { tempDir } from '../helpers/cli.js';
import { handTorrent } from '../helpers/torrent.js';

const calls = vi.hoisted(() => ({ syncfs: 0, datasync: 0 }));
vi.mock('../../src/storage/fs-util.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/storage/fs-util.js')>();
  return {
    ...real,
    fdCall: {
      ...real.fdCall,
      datasync: (fd: number) => {
        calls.datasync++;
        return real.fdCall.datasync(fd);
      },
    },
    // As on a kernel with syncfs, whose `sync -f` then fails.
    syncfsUsable: () => true,
    syncFileSystems: () => {
      calls.syncfs++;
      return Promise.resolve(false);
    },
  };
});

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-sync-'));
});
afterEach(async () => {
  await cleanup();
});

describe('syncs without syncfs', () => {
  it('a checkpoint falls back to a sync per file and records every piece', async () => {
    const n = 40;
    const { meta, layout, data, pieces } = handTorrent(
      'fallback',
      2048,
      Array.from({ length: n }, (_, i) => ({ path: [`d${i % 3}`, `f${i}`], length: 500 + i })),
    );
    const files = meta.files;
    const plan = await planOutput(meta, dir);
    let s = await DiskStorage.open(plan, layout, { maxOpenFiles: 4 });
    const w = new ResumeWriter(resumePath(plan), meta, s, new Bitfield(layout.pieceCount));
    s.setBeforeWrite((i) => w.intent(i));
    await w.checkpoint();
    calls.datasync = 0;
    for (let i = 0; i < layout.pieceCount; i++) {
      await s.writePiece(i, pieces[i]!);
      w.markWritten(i);
    }
    await w.checkpoint();
    expect(calls.syncfs).toBeGreaterThan(0);
    // Every file written was synced on its own (on close, or reopened by the checkpoint).
    expect(calls.datasync).toBeGreaterThanOrEqual(n);
    await w.close();
    await s.close();

    s = await DiskStorage.open(plan, layout, { maxOpenFiles: 4 });
    const c = await startupCheck({
      storage: s,
      layout,
      torrent: meta,
      resumeFile: resumePath(plan),
    });
    expect(c.resume).toBe('used');
    expect(c.have.count).toBe(layout.pieceCount);
    expect(c.hashedPieces).toBe(0);
    await s.close();
    const got = await readFile(path.join(plan.root, 'd1', 'f1.part'));
    expect(got.equals(data.subarray(files[1]!.offset, files[1]!.offset + files[1]!.length))).toBe(
      true,
    );
  });

  it('syncs ahead of the checkpoint: the few files written, without waiting, each once', async () => {
    const { meta, layout, pieces } = handTorrent('ahead', 1024, [
      { path: ['a'], length: 5000 },
      { path: ['b'], length: 3000 },
    ]);
    const plan = await planOutput(meta, dir);
    const s = await DiskStorage.open(plan, layout);
    for (let i = 0; i < 6; i++) await s.writePiece(i, pieces[i]!);
    await s.flush();
    calls.datasync = 0;
    s.syncAhead();
    // Both files are being synced: a second call starts nothing more.
    s.syncAhead();
    await s.sync();
    expect(calls.datasync).toBe(2);
    // Written again since: the next sync covers that file, and only it.
    await s.writePiece(7, pieces[7]!);
    await s.sync();
    expect(calls.datasync).toBe(3);
    await s.close();
    expect(calls.datasync).toBe(3);
  });

  it('leaves many files to the checkpoint (syncfs)', async () => {
    const n = 12;
    const { meta, layout, pieces } = handTorrent(
      'many',
      1024,
      Array.from({ length: n }, (_, i) => ({ path: [`f${i}`], length: 1024 })),
    );
    const plan = await planOutput(meta, dir);
    const s = await DiskStorage.open(plan, layout);
    for (let i = 0; i < n; i++) await s.writePiece(i, pieces[i]!);
    await s.flush();
    calls.datasync = 0;
    s.syncAhead();
    expect(calls.datasync).toBe(0);
    s.discardData();
    await s.close();
  });
});
