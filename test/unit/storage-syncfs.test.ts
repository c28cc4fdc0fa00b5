/**
 * A checkpoint's syncfs covers every write made before it began: a file written again while it
 * ran needs no fdatasync of its own then, and stays dirty and unsynced for the next sync.
 */
import { describe, expect, it, vi } from 'vitest';
import { DiskStorage } from '../../src/storage/disk.js';
import { planOutput } from '../../src/storage/output.js';
import { useFixture } from '../helpers/fixture.js';
import { handTorrent } from '../helpers/torrent.js';

const hooks = vi.hoisted(() => ({
  syncfs: 0,
  datasync: 0,
  /** Run while the next syncfs is "running". */
  during: null as (() => Promise<void>) | null,
}));
vi.mock('../../src/storage/fs-util.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/storage/fs-util.js')>();
  return {
    ...real,
    syncfsUsable: () => true,
    syncfsFlushes: () => true,
    startSyncHelper: () => {},
    stopSyncHelper: () => {},
    syncFileSystems: async () => {
      hooks.syncfs++;
      const f = hooks.during;
      hooks.during = null;
      await f?.();
      return true;
    },
    fdCall: {
      ...real.fdCall,
      datasync: (fd: number) => {
        hooks.datasync++;
        return real.fdCall.datasync(fd);
      },
    },
  };
});

const fx = useFixture();

describe('a checkpoint sync by syncfs', () => {
  it('does not fdatasync a file written again while it ran, and leaves it for the next sync', async () => {
    // Ten files of 3,000 bytes, pieces of 2,048: piece 2 writes the end of file 1 and the start
    // of file 2, both written before by pieces 1 and 3.
    const { meta, layout, pieces } = handTorrent(
      'syncfs',
      2048,
      Array.from({ length: 10 }, (_, i) => ({ path: [`f${i}`], length: 3000 })),
    );
    const plan = await planOutput(meta, fx.dir);
    const s = await DiskStorage.open(plan, layout, { maxOpenFiles: 64 });
    try {
      // Pieces 0, 1 and 3.. : every file but the second half of file 1 (piece 2).
      for (let i = 0; i < layout.pieceCount; i++) if (i !== 2) await s.writePiece(i, pieces[i]!);
      const dirty = s.takeDirty();
      expect(dirty.length).toBe(10);
      hooks.during = () => s.writePiece(2, pieces[2]!);
      await s.syncFiles(dirty);
      expect(hooks.syncfs).toBe(1);
      expect(hooks.datasync).toBe(0);
      // Written during the sync: dirty again, and synced by the next one.
      const again = s.takeDirty();
      expect(again.sort()).toEqual([1, 2]);
      // Two files: one fdatasync each (fewer than SYNCFS_MIN_FILES).
      await s.sync();
      expect(hooks.datasync).toBe(2);
    } finally {
      await s.close();
    }
  });
});
