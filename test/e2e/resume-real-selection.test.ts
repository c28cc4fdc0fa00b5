/**
 * Resuming across selections through the real CLI with fake seeders: a boundary piece kept in
 * `<output>.tdl-parts` by a narrower run is not fetched again by a wider one, even where the
 * working copy of a file selected again (left by an earlier, wider run) holds a hole in its place.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import type { FakeSeeder } from '../helpers/fake-seeder.js';
import { useFixture } from '../helpers/fixture.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();
const PIECE = 32 * 1024;
const peerArgs = (s: FakeSeeder) => ['--peer', `127.0.0.1:${s.port}`, '--no-listen', '--no-dht'];

describe('resuming across selections', () => {
  it('wider, after a narrower run: the boundary copy replaces a hole in a working file, unfetched', async () => {
    // f1 ends inside piece 1, whose other bytes are f2's.
    const files = [50_000, 70_000, 100_000].map((n, i) => ({
      path: [`f${i + 1}.bin`],
      data: randomBytesSeeded(n, `widen-${i}`),
    }));
    const t = makeTorrent({ name: 'three', pieceLength: PIECE, files });
    const torrent = await fx.writeTorrent(t);
    const out = path.join(fx.dir, 'out');

    // 1. The whole torrent, stopped without piece 1: f2.bin.part is at full length, with a hole
    //    where piece 1's bytes go.
    const without1 = await fx.seeder(t, PIECE, { pieces: (i) => i !== 1 });
    const r1 = await runCli([
      'download',
      torrent,
      '-o',
      out,
      '--timeout',
      '2',
      ...peerArgs(without1),
    ]);
    expect(r1.code, r1.stderr).toBe(5);

    // 2. f1 alone: piece 1 is fetched, its bytes for f1 written, a copy kept in out.tdl-parts;
    //    f2.bin.part, not selected, is left as it is.
    const s2 = await fx.seeder(t, PIECE);
    const r2 = await runCli(['download', torrent, '-o', out, '--select', '1', ...peerArgs(s2)]);
    expect(r2.code, r2.stderr).toBe(0);
    expect(s2.servedBlocks.get(1)).toBe(2);

    // 3. Every file: everything is on disk or in the copy, nothing is fetched, and nothing there
    //    is taken for data of another torrent.
    const s3 = await fx.seeder(t, PIECE);
    const r3 = await runCli(['download', torrent, '-o', out, '--json', ...peerArgs(s3)]);
    expect(r3.code, r3.stderr).toBe(0);
    expect(s3.served).toBe(0);
    const done = r3.events.find((e) => e.event === 'done');
    expect(done?.replaced).toBe(0);
    expect(r3.events.some((e) => e.event === 'warning')).toBe(false);
    for (const f of files) {
      expect((await readFile(path.join(out, ...f.path))).equals(f.data)).toBe(true);
    }
  });
});
