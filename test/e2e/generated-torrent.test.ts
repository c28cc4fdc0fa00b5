/**
 * The generated-data seeder (scripts/lib/gen-seeder.mjs) behind the 8 GiB bench scenario, here
 * at a size a test can afford: many small pieces, so per-piece costs would show, data checked.
 */
import { open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  generatedData,
  generatedTorrent,
  startGeneratedSeeder,
} from '../../scripts/lib/gen-seeder.mjs';
import { runCli } from '../helpers/cli.js';
import { useFixture } from '../helpers/fixture.js';

const fx = useFixture();

describe('a torrent of generated data', () => {
  it('downloads 4,096 pieces of 16 KiB from the generated seeder, byte for byte', async () => {
    const data = generatedData(4096 * 16384 - 1000, 16384);
    const { torrent, infoHash } = generatedTorrent(data, 'gen.bin');
    const seeder = await startGeneratedSeeder(data, infoHash);
    fx.onClose(() => seeder.close());
    const file = path.join(fx.dir, 'gen.torrent');
    await writeFile(file, torrent);
    const out = path.join(fx.dir, 'gen.bin');
    const r = await runCli([
      'download',
      file,
      '-o',
      out,
      '--peer',
      `127.0.0.1:${seeder.port}`,
      '--quiet',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const fh = await open(out); // one file: -o names it
    try {
      expect((await fh.stat()).size).toBe(data.size);
      const buf = Buffer.alloc(data.pieceLength);
      for (let i = 0; i < data.pieceCount; i++) {
        const want = data.piece(i);
        const { bytesRead } = await fh.read(buf, 0, want.length, i * data.pieceLength);
        expect(bytesRead).toBe(want.length);
        if (!buf.subarray(0, want.length).equals(want)) expect.fail(`piece ${i} differs`);
      }
    } finally {
      await fh.close();
    }
  }, 120_000);
});
