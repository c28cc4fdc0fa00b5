/**
 * tdl downloads 32 MiB from a transmission-daemon seeder found through opentracker.
 * transmission unchokes in rounds of about 10 s and serves in bandwidth ticks, slowly on
 * loopback (other clients take 17–24 s here): the bounds are generous.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import {
  startOpentracker,
  startTransmissionSeeder,
  stopAll,
  waitForSeeders,
  makeTempDir,
  type Tracker,
} from '../../scripts/lib/real-peers.mjs';
import {
  SETUP_TIMEOUT_MS,
  START_TIMEOUT_MS,
  downloadAndCheck,
  preparePayload,
  programsGate,
  type Payload,
} from './swarm.js';

const SIZE = 32 * 1024 * 1024;
/** One download: generous (libtorrent's downloader takes about 20 s; see docs/BENCHMARKS.md, scenario 8). */
const DOWNLOAD_TIMEOUT_MS = 240_000;

const gate = programsGate([
  'opentracker',
  'libtorrent',
  'transmission-daemon',
  'transmission-remote',
]);

describe.skipIf(gate.skip)('tdl and a transmission-daemon seeder through opentracker', () => {
  let tracker: Tracker;
  let payload: Payload;

  beforeAll(async () => {
    gate.assertPresent();
    const work = await makeTempDir('tdl-interop-transmission-');
    tracker = await startOpentracker({ timeoutMs: START_TIMEOUT_MS });
    payload = await preparePayload(work, { name: 'transmission.bin', size: SIZE }, tracker);
    await startTransmissionSeeder({
      torrent: payload.httpTorrent,
      dataDir: payload.dataDir,
      timeoutMs: 2 * START_TIMEOUT_MS,
    });
    await waitForSeeders(tracker.httpUrl, payload.infoHashHex, 1, 2 * START_TIMEOUT_MS);
  }, 3 * SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await stopAll();
  }, SETUP_TIMEOUT_MS);

  it(
    'downloads 32 MiB byte for byte',
    () => downloadAndCheck(payload, payload.httpTorrent, { timeoutMs: DOWNLOAD_TIMEOUT_MS }),
    DOWNLOAD_TIMEOUT_MS + 30_000,
  );
});
