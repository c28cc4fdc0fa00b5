/**
 * Reverse interop: real clients (libtorrent's downloader and aria2c) download from `tdl seed`,
 * the only seeder, found through a real opentracker. Each download is checked byte for byte.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  aria2Download,
  compareTrees,
  libtorrentDownload,
  makeTempDir,
  removeTempDir,
  startOpentracker,
  startTdlPeer,
  stopAll,
  waitForSeeders,
  type MeasuredRun,
  type TdlPeer,
  type Tracker,
} from '../../scripts/lib/real-peers.mjs';
import {
  DOWNLOAD_TIMEOUT_MS,
  MULTI_FILE,
  SETUP_TIMEOUT_MS,
  SINGLE_FILE,
  START_TIMEOUT_MS,
  TEST_TIMEOUT_MS,
  preparePayload,
  programsGate,
  type Payload,
} from './swarm.js';

const DOWNLOADERS = [
  { name: 'libtorrent', programs: ['opentracker', 'libtorrent'], run: libtorrentDownload },
  { name: 'aria2c', programs: ['opentracker', 'libtorrent', 'aria2c'], run: aria2Download },
] as const;

for (const downloader of DOWNLOADERS) {
  const gate = programsGate([...downloader.programs]);

  describe.skipIf(gate.skip)(
    `${downloader.name} downloads from tdl seed through opentracker`,
    () => {
      let tracker: Tracker;
      let single: Payload;
      let multi: Payload;
      const seeders: TdlPeer[] = [];

      beforeAll(async () => {
        gate.assertPresent();
        const work = await makeTempDir(`tdl-reverse-${downloader.name}-`);
        tracker = await startOpentracker({ timeoutMs: START_TIMEOUT_MS });
        single = await preparePayload(work, SINGLE_FILE, tracker);
        multi = await preparePayload(work, MULTI_FILE, tracker);
        for (const p of [single, multi]) {
          seeders.push(
            await startTdlPeer({
              command: 'seed',
              torrent: p.httpTorrent,
              out: p.root,
              timeoutMs: START_TIMEOUT_MS,
            }),
          );
          await waitForSeeders(tracker.httpUrl, p.infoHashHex, 1, START_TIMEOUT_MS);
        }
      }, SETUP_TIMEOUT_MS);

      afterAll(async () => {
        // tdl leaves cleanly on SIGINT: exit code 0 after seeding.
        const exits = await Promise.all(seeders.map((s) => s.stop()));
        await stopAll();
        for (const e of exits) expect(e?.code).toBe(0);
      }, SETUP_TIMEOUT_MS);

      const check = async (payload: Payload) => {
        const out = await makeTempDir('tdl-reverse-out-');
        try {
          const run: MeasuredRun = await downloader.run({
            torrent: payload.httpTorrent,
            outDir: out,
            timeoutMs: DOWNLOAD_TIMEOUT_MS,
          });
          expect(run.code).toBe(0);
          expect(await compareTrees(payload.root, path.join(out, payload.name))).toEqual([]);
        } finally {
          await removeTempDir(out);
        }
      };

      it('downloads an 8 MiB single-file torrent', () => check(single), TEST_TIMEOUT_MS);

      it(
        'downloads a multi-file torrent whose pieces cross file boundaries',
        () => check(multi),
        TEST_TIMEOUT_MS,
      );
    },
  );
}
