/**
 * tdl downloads from one real aria2c seeder found through a real opentracker.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import {
  makeTempDir,
  startAria2Seeder,
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

const gate = programsGate(['opentracker', 'libtorrent', 'aria2c']);

describe.skipIf(gate.skip)('tdl and an aria2c seeder through opentracker', () => {
  let tracker: Tracker;
  let single: Payload;
  let multi: Payload;

  beforeAll(async () => {
    gate.assertPresent();
    const work = await makeTempDir('tdl-interop-aria2-');
    tracker = await startOpentracker({ timeoutMs: START_TIMEOUT_MS });
    single = await preparePayload(work, SINGLE_FILE, tracker);
    multi = await preparePayload(work, MULTI_FILE, tracker);
    // One seeder per torrent, so we know who served each download.
    for (const p of [single, multi]) {
      await startAria2Seeder({
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
    'downloads an 8 MiB single-file torrent',
    async () => {
      await downloadAndCheck(single, single.httpTorrent);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'downloads a multi-file torrent whose pieces cross file boundaries',
    async () => {
      await downloadAndCheck(multi, multi.httpTorrent);
    },
    TEST_TIMEOUT_MS,
  );
});
