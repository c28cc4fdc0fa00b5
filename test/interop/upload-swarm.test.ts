/**
 * A crowd downloading from one `tdl seed` with few upload slots and an upload limit: three
 * libtorrent tit-for-tat leechers (3 unchoke slots, 1 MiB/s up, so they trade among themselves)
 * and aria2c, started together, found through a real opentracker. Each must finish byte for
 * byte although tdl serves two of them at a time (one regular slot and the optimistic one), and
 * tdl must never send faster than its limit.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  aria2Download,
  compareTrees,
  libtorrentLeech,
  makeTempDir,
  removeTempDir,
  startOpentracker,
  startTdlPeer,
  stopAll,
  waitForSeeders,
  type TdlPeer,
  type Tracker,
} from '../../scripts/lib/real-peers.mjs';
import {
  SETUP_TIMEOUT_MS,
  SINGLE_FILE,
  START_TIMEOUT_MS,
  preparePayload,
  programsGate,
  type Payload,
} from './swarm.js';

const gate = programsGate(['opentracker', 'libtorrent', 'aria2c']);

/** tdl's upload limit: 8 MiB to four leechers takes several seconds at this rate. */
const RATE = 2 * 1024 * 1024;
/** What the token bucket may hold on top of the rate (its burst, 0.25 s of the rate). */
const BURST = RATE / 4;
/** Bound on each leecher: far beyond the 5-15 s they take here, for a busy machine. */
const LEECH_TIMEOUT_MS = 120_000;

describe.skipIf(gate.skip)('a crowd of real leechers downloads from tdl seed', () => {
  let tracker: Tracker;
  let payload: Payload;
  let work: string;
  let seed: TdlPeer | undefined;

  beforeAll(async () => {
    gate.assertPresent();
    work = await makeTempDir('tdl-upload-swarm-');
    tracker = await startOpentracker({ timeoutMs: START_TIMEOUT_MS });
    payload = await preparePayload(work, SINGLE_FILE, tracker);
    seed = await startTdlPeer({
      command: 'seed',
      torrent: payload.httpTorrent,
      out: payload.root,
      args: ['--upload-slots', '1', '--max-upload-rate', String(RATE), '--no-dht'],
      timeoutMs: START_TIMEOUT_MS,
    });
    await waitForSeeders(tracker.httpUrl, payload.infoHashHex, 1, START_TIMEOUT_MS);
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await seed?.stop();
    await stopAll();
    await removeTempDir(work);
  }, SETUP_TIMEOUT_MS);

  it(
    'with one upload slot and a limit: every leecher finishes, and tdl keeps to its limit',
    async () => {
      const started = Date.now();
      const leech = async (run: (out: string) => Promise<{ code: number | null }>) => {
        const out = await makeTempDir('tdl-upload-swarm-out-');
        try {
          const r = await run(out);
          expect(r.code).toBe(0);
          expect(await compareTrees(payload.root, path.join(out, payload.name))).toEqual([]);
        } finally {
          await removeTempDir(out);
        }
      };
      const libtorrent = (outDir: string) =>
        libtorrentLeech({
          torrent: payload.httpTorrent,
          outDir,
          timeoutMs: LEECH_TIMEOUT_MS,
          uploadRateLimit: 1024 * 1024,
          unchokeSlots: 3,
        });
      const aria2 = (outDir: string) =>
        aria2Download({ torrent: payload.httpTorrent, outDir, timeoutMs: LEECH_TIMEOUT_MS });
      await Promise.all([libtorrent, libtorrent, libtorrent, aria2].map(leech));
      const windowMs = Date.now() - started;
      // Every leecher is gone: tdl has sent all it will. The leechers had no other seed, so at
      // least one copy came from tdl; and never more than its limit allowed over the window.
      const tdl = seed!;
      seed = undefined;
      const exit = await tdl.stop();
      expect(exit?.code).toBe(0);
      const done = tdl.events.find((e) => e.event === 'done');
      expect(done).toBeDefined();
      const uploaded = done!['uploaded'] as number;
      expect(uploaded).toBeGreaterThanOrEqual((await stat(payload.root)).size);
      expect(uploaded).toBeLessThanOrEqual((RATE * windowMs) / 1000 + BURST);
    },
    LEECH_TIMEOUT_MS + 60_000,
  );
});
