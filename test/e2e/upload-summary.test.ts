/**
 * The upload figures of the `done` event: `uploadRate` is the average over the run, like
 * `averageRate` for the download, not the rate of the last seconds (0 for a seed whose leechers
 * left before it stopped).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FakeLeecher } from '../helpers/fake-leecher.js';
import { useFixture } from '../helpers/fixture.js';
import { assertBuilt, spawnTdl } from '../helpers/tdl-process.js';
import { randomBytesSeeded } from '../helpers/torrent.js';

const fx = useFixture();

beforeAll(() => assertBuilt());

describe('the done event of a seed', () => {
  it('uploadRate is uploaded over the run, also when the leecher left seconds before', async () => {
    const SIZE = 512 * 1024;
    const PIECE = 32768;
    const data = randomBytesSeeded(SIZE, 'upload-summary');
    const { t, torrent } = await fx.singleFile(data, PIECE);
    const out = path.join(fx.dir, 'out');
    await mkdir(out, { recursive: true });
    const file = path.join(out, 'data.bin');
    await writeFile(file, data);
    // Seeds for 6 s; the leecher is done in well under a second, then leaves.
    const tdl = spawnTdl(
      ['seed', torrent, '-o', file, '--port', '0', '--json', '--seed-time', '0.1'],
      fx.onClose,
    );
    const port = await tdl.port();
    const l = await FakeLeecher.connect({
      port,
      infoHash: t.infoHash,
      peerId: Buffer.from('-US0001-uploadsummary'.slice(0, 20)),
      fast: true,
      localAddress: '127.0.0.2',
      keepBlocks: false,
      checkAgainst: { data, pieceLength: PIECE },
    });
    fx.onClose(() => l.close());
    await l.waitHandshake();
    expect(await l.downloadAll(SIZE, PIECE)).toBe(SIZE);
    await l.close();
    const { code } = await tdl.exited;
    expect(code).toBe(0);
    const done = tdl.events.find((e) => e.event === 'done')!;
    const uploaded = done['uploaded'] as number;
    const elapsedMs = done['elapsedMs'] as number;
    expect(uploaded).toBeGreaterThanOrEqual(SIZE);
    expect(elapsedMs).toBeGreaterThanOrEqual(5_000);
    expect(done['uploadRate']).toBe(Math.round(uploaded / (elapsedMs / 1000)));
  }, 40_000);
});
