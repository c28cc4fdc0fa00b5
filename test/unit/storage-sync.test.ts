/**
 * When syncfs cannot be used or fails (`sync -f` missing, an I/O error), a checkpoint falls back
 * to one fdatasync per file, reopening files that left the pool, and still records every piece.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startupCheck } from '../../src/storage/check.js';
import { ResumeWriter } from '../../src/storage/checkpoint.js';
import { DiskStorage } from '../../src/storage/disk.js';
import { Layout } from '../../src/storage/layout.js';
import { resumePath } from '../../src/storage/names.js';
import { planOutput } from '../../src/storage/output.js';
import { Bitfield } from '../../src/wire/bitfield.js';
import { tempDir } from '../helpers/cli.js';
import { randomBytesSeeded } from '../helpers/torrent.js';

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
    let offset = 0;
    const files = Array.from({ length: n }, (_, i) => {
      const f = { path: [`d${i % 3}`, `f${i}`], length: 500 + i, offset };
      offset += f.length;
      return f;
    });
    const data = randomBytesSeeded(offset, 7);
    const pieceLength = 2048;
    const layout = new Layout(files, pieceLength, data.length);
    const pieces = Array.from({ length: layout.pieceCount }, (_, i) =>
      data.subarray(i * pieceLength, Math.min(data.length, (i + 1) * pieceLength)),
    );
    const meta = {
      name: 'fallback',
      multiFile: true,
      infoHash: createHash('sha1').update('fallback').digest(),
      files,
      pieceLength,
      length: data.length,
      pieceCount: layout.pieceCount,
      pieceHashes: Buffer.concat(pieces.map((p) => createHash('sha1').update(p).digest())),
    };
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
    const files = [
      { path: ['a'], length: 5000, offset: 0 },
      { path: ['b'], length: 3000, offset: 5000 },
    ];
    const data = randomBytesSeeded(8000, 9);
    const pieceLength = 1024;
    const layout = new Layout(files, pieceLength, data.length);
    const meta = {
      name: 'ahead',
      multiFile: true,
      infoHash: createHash('sha1').update('ahead').digest(),
      files,
      pieceLength,
      length: data.length,
      pieceCount: layout.pieceCount,
      pieceHashes: Buffer.alloc(20 * layout.pieceCount),
    };
    const plan = await planOutput(meta, dir);
    const s = await DiskStorage.open(plan, layout);
    const piece = (i: number) => data.subarray(i * pieceLength, (i + 1) * pieceLength);
    for (let i = 0; i < 6; i++) await s.writePiece(i, piece(i));
    await s.flush();
    calls.datasync = 0;
    s.syncAhead();
    // Both files are being synced: a second call starts nothing more.
    s.syncAhead();
    await s.sync();
    expect(calls.datasync).toBe(2);
    // Written again since: the next sync covers that file, and only it.
    await s.writePiece(7, piece(7));
    await s.sync();
    expect(calls.datasync).toBe(3);
    await s.close();
    expect(calls.datasync).toBe(3);
  });

  it('leaves many files to the checkpoint (syncfs)', async () => {
    const n = 12;
    const files = Array.from({ length: n }, (_, i) => ({
      path: [`f${i}`],
      length: 1024,
      offset: i * 1024,
    }));
    const data = randomBytesSeeded(n * 1024, 10);
    const layout = new Layout(files, 1024, data.length);
    const meta = {
      name: 'many',
      multiFile: true,
      infoHash: createHash('sha1').update('many').digest(),
      files,
      pieceLength: 1024,
      length: data.length,
      pieceCount: n,
      pieceHashes: Buffer.alloc(20 * n),
    };
    const plan = await planOutput(meta, dir);
    const s = await DiskStorage.open(plan, layout);
    for (let i = 0; i < n; i++) await s.writePiece(i, data.subarray(i * 1024, (i + 1) * 1024));
    await s.flush();
    calls.datasync = 0;
    s.syncAhead();
    expect(calls.datasync).toBe(0);
    s.discardData();
    await s.close();
  });
});
