/**
 * The resume file's first checkpoint runs beside the start of the download (docs/DESIGN.md,
 * "Start-up"): peers are dialled, handshaken and told we are interested while it is written, and
 * no block is asked for before it is. In process, with the checkpoint's rename held until the
 * seeder has heard `interested` (or 10 s, when it never does: the test then fails).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const held = vi.hoisted(() => ({
  /** What the seeder has received so far (set by the test). */
  received: null as string[] | null,
  /** A copy of it when the first checkpoint was let through. */
  atCheckpoint: null as string[] | null,
}));

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const rename = async (from: string, to: string) => {
    const seen = held.received;
    if (seen && held.atCheckpoint === null && String(to).endsWith('.tdl-resume')) {
      const end = Date.now() + 10_000;
      while (!seen.includes('interested') && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 5));
      }
      held.atCheckpoint = [...seen];
    }
    return real.rename(from, to);
  };
  return { ...real, rename, default: { ...real, rename } };
});

const fx = useFixture();
const PIECE = 32 * 1024;

describe('the first checkpoint', () => {
  it('is written while the seeder is dialled and told we are interested; no request before it', async () => {
    const data = randomBytesSeeded(8 * PIECE + 100, 'first-checkpoint');
    const t = makeTorrent({ name: 'f.bin', pieceLength: PIECE, files: { data } });
    const s = await fx.seeder(t, PIECE);
    held.received = s.received;
    held.atCheckpoint = null;
    const file = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'f.bin');
    const r = await runCli([
      'download',
      file,
      '-o',
      out,
      '--peer',
      `127.0.0.1:${s.port}`,
      '--no-listen',
    ]);
    held.received = null;
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(held.atCheckpoint).toContain('interested');
    expect(held.atCheckpoint).not.toContain('request');
    expect(s.received).toContain('request');
  });
});
