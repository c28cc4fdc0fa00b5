/**
 * tdl downloads from one real seeder (libtorrent over TCP, or aria2c) found through a real
 * opentracker, over its HTTP and its UDP announce URL. One seeder per torrent, so we know who
 * served each download.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import {
  makeTempDir,
  startAria2Seeder,
  startLibtorrentSeeder,
  startOpentracker,
  stopAll,
  waitForSeeders,
  type Tracker,
} from '../../scripts/lib/real-peers.mjs';
import {
  MULTI_FILE,
  SETUP_TIMEOUT_MS,
  SINGLE_FILE,
  START_TIMEOUT_MS,
  TEST_TIMEOUT_MS,
  downloadAndCheck,
  preparePayload,
  programsGate,
  type Payload,
} from './swarm.js';

const SEEDERS = [
  { name: 'libtorrent', programs: ['opentracker', 'libtorrent'], start: startLibtorrentSeeder },
  { name: 'aria2c', programs: ['opentracker', 'libtorrent', 'aria2c'], start: startAria2Seeder },
] as const;

for (const seeder of SEEDERS) {
  const gate = programsGate([...seeder.programs]);

  describe.skipIf(gate.skip)(`tdl and a ${seeder.name} seeder through opentracker`, () => {
    let tracker: Tracker;
    let single: Payload;
    let multi: Payload;

    beforeAll(async () => {
      gate.assertPresent();
      const work = await makeTempDir(`tdl-interop-${seeder.name}-`);
      tracker = await startOpentracker({ timeoutMs: START_TIMEOUT_MS });
      single = await preparePayload(work, SINGLE_FILE, tracker);
      multi = await preparePayload(work, MULTI_FILE, tracker);
      for (const p of [single, multi]) {
        await seeder.start({
          torrent: p.httpTorrent,
          dataDir: p.dataDir,
          timeoutMs: START_TIMEOUT_MS,
        });
      }
      await waitForSeeders(tracker.httpUrl, single.infoHashHex, 1, START_TIMEOUT_MS);
      await waitForSeeders(tracker.httpUrl, multi.infoHashHex, 1, START_TIMEOUT_MS);
    }, SETUP_TIMEOUT_MS);

    afterAll(async () => {
      await stopAll();
    }, SETUP_TIMEOUT_MS);

    it(
      'downloads an 8 MiB single-file torrent (HTTP tracker)',
      () => downloadAndCheck(single, single.httpTorrent),
      TEST_TIMEOUT_MS,
    );

    it(
      'downloads a multi-file torrent whose pieces cross file boundaries (HTTP tracker)',
      () => downloadAndCheck(multi, multi.httpTorrent),
      TEST_TIMEOUT_MS,
    );

    it(
      'downloads with --max-peers 1',
      () => downloadAndCheck(single, single.httpTorrent, { maxPeers: 1 }),
      TEST_TIMEOUT_MS,
    );

    it(
      'finds the seeder through the UDP announce URL',
      () => downloadAndCheck(multi, multi.udpTorrent),
      TEST_TIMEOUT_MS,
    );
  });
}
