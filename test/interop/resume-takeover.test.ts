/**
 * Another client's unfinished download, finished by tdl: a libtorrent downloader (throttled) is
 * stopped part way through a multi-file torrent whose pieces cross file boundaries, leaving its
 * files under their final names, sparse, with some pieces on disk and maybe one half written.
 * `tdl verify` reports that folder as incomplete, read-only; `tdl download` into the same folder
 * checks it, keeps every valid piece (the same bytes verify found), fetches only the rest from a
 * libtorrent seeder, and leaves the payload byte for byte. No tracker, no DHT: the torrent names
 * none, and tdl is given the seeder's address.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertTdlOk,
  bytesOnDisk,
  compareTrees,
  createTorrent,
  makePayload,
  makeTempDir,
  removeTempDir,
  startLibtorrentPeer,
  stopAll,
  TDL_CLI,
  tdlDownload,
} from '../../scripts/lib/real-peers.mjs';
import { checkEvent } from '../helpers/events-schema.js';
import { MULTI_FILE, PIECE_LENGTH, START_TIMEOUT_MS, programsGate } from './swarm.js';

/** Generous bounds: a busy machine may be slow to start programs and move bytes. */
const PARTIAL_TIMEOUT_MS = 60_000;
const DOWNLOAD_TIMEOUT_MS = 45_000;
const TEST_TIMEOUT_MS = PARTIAL_TIMEOUT_MS + DOWNLOAD_TIMEOUT_MS + 30_000;

const gate = programsGate(['libtorrent']);

describe.skipIf(gate.skip)("tdl finishes libtorrent's unfinished download in place", () => {
  let work = '';
  let root = '';
  let dataDir = '';
  let torrent = '';

  beforeAll(async () => {
    gate.assertPresent();
    work = await makeTempDir('tdl-interop-takeover-');
    dataDir = path.join(work, 'data');
    root = await makePayload(dataDir, MULTI_FILE);
    torrent = (
      await createTorrent({
        source: root,
        out: path.join(work, 'multi.torrent'),
        pieceLength: PIECE_LENGTH,
        trackers: [],
      })
    ).path;
  }, START_TIMEOUT_MS);

  afterAll(async () => {
    await stopAll();
    await removeTempDir(work);
  }, START_TIMEOUT_MS);

  it(
    'verify reports it incomplete; download keeps its valid pieces and fetches the rest',
    async () => {
      const seeder = await startLibtorrentPeer({ torrent, dataDir });
      try {
        const out = path.join(work, 'partial');
        // About 1 MiB/s: stopped once 1.5 MiB of the 6 are on disk, well before the end.
        const leech = await startLibtorrentPeer({
          torrent,
          dataDir: out,
          connect: [`127.0.0.1:${seeder.port}`],
          downloadLimit: 1024 * 1024,
        });
        try {
          const end = Date.now() + PARTIAL_TIMEOUT_MS;
          while ((await bytesOnDisk(out)) < 1.5 * 1024 * 1024) {
            if (leech.done() || Date.now() > end) break;
            await new Promise((r) => setTimeout(r, 100));
          }
          expect(leech.done()).toBe(false);
        } finally {
          await leech.stop();
        }

        // Read-only: exit 5, some of it valid.
        const verify = spawnSync(
          process.execPath,
          [TDL_CLI, 'verify', torrent, '-o', path.join(out, MULTI_FILE.name), '--json'],
          { encoding: 'utf8', timeout: DOWNLOAD_TIMEOUT_MS },
        );
        expect(verify.status, verify.stderr).toBe(5);
        const verified = verify.stdout
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => checkEvent(JSON.parse(l) as Record<string, unknown>))
          .find((e) => e.event === 'verified');
        const valid = verified?.valid as number;
        const size = verified?.size as number;
        expect(valid).toBeGreaterThan(0);
        expect(valid).toBeLessThan(size);

        // -o the folder that holds libtorrent's top folder, as for libtorrent (its save path).
        const run = await tdlDownload({
          torrent,
          out,
          peers: [`127.0.0.1:${seeder.port}`],
          args: ['--no-dht', '--no-listen'],
          timeoutMs: DOWNLOAD_TIMEOUT_MS,
        });
        assertTdlOk(run);
        for (const e of run.events) checkEvent(e);
        const started = run.events.find((e) => e.event === 'started');
        const done = run.events.find((e) => e.event === 'done');
        expect(started?.output).toBe(path.join(out, MULTI_FILE.name));
        // What verify found valid is kept: only the rest comes from the seeder.
        expect(started?.present).toBe(valid);
        expect(done?.downloaded).toBe(size - valid);
        expect(await compareTrees(root, path.join(out, MULTI_FILE.name))).toEqual([]);
      } finally {
        await seeder.stop();
      }
    },
    TEST_TIMEOUT_MS,
  );
});
