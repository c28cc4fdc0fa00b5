/**
 * Per-test scaffolding for end-to-end tests: a temp folder, fake seeders and trackers on
 * 127.0.0.1, all closed and removed after each test however it ends.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { tempDir } from './cli.js';
import { startFakeSeeder, type FakeSeeder, type FakeSeederOptions } from './fake-seeder.js';
import { startHttpTracker, type FakeTracker } from './fake-tracker.js';
import { spawnTdl, type TdlProcess } from './tdl-process.js';
import { makeTorrent, type MadeTorrent } from './torrent.js';

export interface Fixture {
  /** This test's temp folder. */
  readonly dir: string;
  /** Run `close` after this test. */
  onClose(close: () => Promise<void>): void;
  seeder(t: MadeTorrent, pieceLength: number, o?: Partial<FakeSeederOptions>): Promise<FakeSeeder>;
  /** An HTTP tracker that lists these seeders (a function: read at each announce). */
  tracker(peers: FakeSeeder[] | (() => FakeSeeder[])): Promise<FakeTracker>;
  writeTorrent(t: MadeTorrent, name?: string): Promise<string>;
  /**
   * A one-file torrent of `data` (named data.bin) announcing to a tracker that lists no peer,
   * written to this test's folder: the torrent, the path of the .torrent, and the tracker.
   */
  singleFile(
    data: Buffer,
    pieceLength: number,
  ): Promise<{ t: MadeTorrent; torrent: string; tr: FakeTracker }>;
  /**
   * `tdl seed` of a one-file torrent of `data` (singleFile), the file complete on disk at
   * `<dir>/out/data.bin`, listening on a free port with `--json`, and `args` after: the
   * torrent, the seed's process and its port once it listens.
   */
  tdlSeed(
    data: Buffer,
    pieceLength: number,
    args?: string[],
  ): Promise<{ t: MadeTorrent; torrent: string; file: string; tdl: TdlProcess; port: number }>;
}

export function useFixture(): Fixture {
  let dir = '';
  let cleanup: () => Promise<void> = async () => {};
  const closers: (() => Promise<void>)[] = [];
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterEach(async () => {
    for (const c of closers.splice(0)) await c().catch(() => {});
    await cleanup();
  });
  return {
    get dir() {
      return dir;
    },
    onClose: (close) => closers.push(close),
    async seeder(t, pieceLength, o = {}) {
      const s = await startFakeSeeder({ infoHash: t.infoHash, data: t.data, pieceLength, ...o });
      closers.push(() => s.close());
      return s;
    },
    async tracker(peers) {
      const tr = await startHttpTracker({
        peers: () => (typeof peers === 'function' ? peers() : peers).map((p) => p.address),
        interval: 1,
      });
      closers.push(() => tr.close());
      return tr;
    },
    async writeTorrent(t, name = 't.torrent') {
      const p = path.join(dir, name);
      await writeFile(p, t.torrent);
      return p;
    },
    async singleFile(data, pieceLength) {
      const tr = await this.tracker([]);
      const t = makeTorrent({ name: 'data.bin', pieceLength, files: { data }, announce: tr.url });
      return { t, torrent: await this.writeTorrent(t), tr };
    },
    async tdlSeed(data, pieceLength, args = []) {
      const { t, torrent } = await this.singleFile(data, pieceLength);
      const out = path.join(dir, 'out');
      await mkdir(out, { recursive: true });
      const file = path.join(out, 'data.bin');
      await writeFile(file, data);
      const tdl = spawnTdl(['seed', torrent, '-o', file, '--port', '0', '--json', ...args], (c) =>
        closers.push(c),
      );
      return { t, torrent, file, tdl, port: await tdl.port() };
    },
  };
}
