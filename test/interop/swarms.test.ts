/**
 * Swarms without a plain seeder-to-tdl path: two tdl processes that each hold half the pieces
 * and must trade to finish, and a seeder hidden among addresses whose connects hang.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertTdlOk,
  compareTrees,
  makeTempDir,
  removeTempDir,
  startHangingPeers,
  startLibtorrentSeeder,
  startOpentracker,
  startTdlPeer,
  stopAll,
  tdlDownload,
  waitForSeeders,
  type HangingPeers,
  type Seeder,
  type TdlPeer,
  type Tracker,
} from '../../scripts/lib/real-peers.mjs';
import {
  DOWNLOAD_TIMEOUT_MS,
  PIECE_LENGTH,
  SETUP_TIMEOUT_MS,
  SINGLE_FILE,
  START_TIMEOUT_MS,
  TEST_TIMEOUT_MS,
  preparePayload,
  programsGate,
  type Payload,
} from './swarm.js';

/** Copy `src` to `dest`, zeroing every piece whose index has the parity `zeroParity`. */
async function copyHalf(src: string, dest: string, zeroParity: 0 | 1): Promise<void> {
  const data = await fs.readFile(src);
  for (let i = 0; i * PIECE_LENGTH < data.length; i++) {
    if (i % 2 === zeroParity) data.fill(0, i * PIECE_LENGTH, (i + 1) * PIECE_LENGTH);
  }
  await fs.mkdir(path.dirname(dest), { recursive: true });
  await fs.writeFile(dest, data);
}

/** 8 MiB in 32 pieces: each half holds 16. */
const HALF_BYTES = 4 * 1024 * 1024;

const trading = programsGate(['opentracker', 'libtorrent']);

describe.skipIf(trading.skip)('two tdl peers, each with half the pieces, no seeder', () => {
  let tracker: Tracker;
  let payload: Payload;
  let work: string;

  beforeAll(async () => {
    trading.assertPresent();
    work = await makeTempDir('tdl-halves-');
    tracker = await startOpentracker({ timeoutMs: START_TIMEOUT_MS });
    payload = await preparePayload(work, SINGLE_FILE, tracker);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await stopAll();
  }, SETUP_TIMEOUT_MS);

  it(
    'both finish through opentracker by trading pieces',
    async () => {
      const outs = [path.join(work, 'even'), path.join(work, 'odd')];
      await copyHalf(payload.root, path.join(outs[0]!, payload.name), 1);
      await copyHalf(payload.root, path.join(outs[1]!, payload.name), 0);
      const peers: TdlPeer[] = [];
      try {
        // --seed: the first to finish stays to serve the other; both are stopped once complete.
        for (const out of outs) {
          peers.push(
            await startTdlPeer({
              command: 'download',
              torrent: payload.httpTorrent,
              out,
              args: ['--seed'],
            }),
          );
        }
        const starts = await Promise.all(peers.map((p) => p.waitForEvent('started')));
        for (const s of starts) expect(s.present).toBe(HALF_BYTES);
        await Promise.all(peers.map((p) => p.waitForEvent('seeding', DOWNLOAD_TIMEOUT_MS)));
      } finally {
        const exits = await Promise.all(peers.map((p) => p.stop()));
        for (const e of exits) expect(e?.code).toBe(0);
      }
      for (const out of outs) {
        expect(await compareTrees(payload.root, path.join(out, payload.name))).toEqual([]);
      }
    },
    TEST_TIMEOUT_MS,
  );
});

/** Addresses whose connects hang, listed before the one real seeder. */
const HANGING = 40;

describe.skipIf(trading.skip)(`a seeder listed after ${HANGING} addresses that hang`, () => {
  let tracker: Tracker;
  let payload: Payload;
  let seeder: Seeder;
  let hanging: HangingPeers;

  beforeAll(async () => {
    trading.assertPresent();
    const work = await makeTempDir('tdl-hanging-');
    tracker = await startOpentracker({ timeoutMs: START_TIMEOUT_MS });
    payload = await preparePayload(work, SINGLE_FILE, tracker);
    seeder = await startLibtorrentSeeder({
      torrent: payload.httpTorrent,
      dataDir: payload.dataDir,
      timeoutMs: START_TIMEOUT_MS,
    });
    await waitForSeeders(tracker.httpUrl, payload.infoHashHex, 1, START_TIMEOUT_MS);
    hanging = await startHangingPeers(HANGING);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await stopAll();
  }, SETUP_TIMEOUT_MS);

  it(
    'tdl finishes within a generous bound of the same download without them',
    async () => {
      const run = async (peers: string[]) => {
        const out = await makeTempDir('tdl-hanging-out-');
        try {
          const r = await tdlDownload({
            torrent: payload.httpTorrent,
            out,
            peers,
            timeoutMs: DOWNLOAD_TIMEOUT_MS,
          });
          assertTdlOk(r);
          expect(await compareTrees(payload.root, path.join(out, payload.name))).toEqual([]);
          return r.wallMs;
        } finally {
          await removeTempDir(out);
        }
      };
      const real = `127.0.0.1:${seeder.port}`;
      const alone = await run([real]);
      const crowded = await run([...hanging.ports.map((p) => `127.0.0.1:${p}`), real]);
      // The hanging connects cost at most one connect timeout (5 s) on top, with room for a
      // busy machine; a download that waited on them in turn would take minutes.
      expect(crowded).toBeLessThan(2 * alone + 10_000);
    },
    2 * TEST_TIMEOUT_MS,
  );
});
