/**
 * Peer exchange (BEP 11, ut_pex) between tdl and libtorrent, both directions, on 127.0.0.1 with
 * no tracker and no DHT (the torrent names no tracker): a peer can only be found through the one
 * address each client is given, and that peer's PEX messages.
 * - tdl is given only a libtorrent peer that has no data (its download is throttled to 4 KiB/s)
 *   and is connected to a libtorrent seeder; libtorrent's first PEX message (sent within a
 *   second or two of the extension handshake) names the seeder, which tdl dials and downloads
 *   from. The same message names tdl itself, which tdl does not dial.
 * - a libtorrent downloader is given only tdl, which downloads at 16 KiB/s from a libtorrent
 *   seeder that has PEX off (so that it cannot learn of the downloader from tdl and dial it
 *   itself); tdl's first PEX message, a minute after the downloader's extension handshake,
 *   names the seeder, which the downloader dials (libtorrent records the address as learnt by
 *   PEX) and downloads from.
 * Every byte on disk is checked. libtorrent needs `allow_multiple_connections_per_ip` for peers
 * that share 127.0.0.1 (lt_tool.py sets it); it takes loopback addresses from a PEX message
 * because the sender is on loopback too.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compareTrees,
  makeTempDir,
  removeTempDir,
  startLibtorrentPeer,
  startTdlPeer,
  stopAll,
  type PayloadSpec,
} from '../../scripts/lib/real-peers.mjs';
import { pexTorrents, tdlLearnsSeeder, withPeers } from './pex-peers.js';
import { PIECE_LENGTH, START_TIMEOUT_MS, programsGate } from './swarm.js';

const PAYLOAD: PayloadSpec = { name: 'pex.bin', size: 4 * 1024 * 1024 + 4321 };
/** tdl's first PEX message goes a minute after the extension handshake (docs/DESIGN.md, "PEX"). */
const PEX_FIRST_MESSAGE_MS = 60_000;
/** Generous bounds: a busy machine may be slow to start programs and move bytes. */
const DOWNLOAD_TIMEOUT_MS = 45_000;
const TEST_TIMEOUT_MS = 60_000;
/** The libtorrent downloader's limit: the payload takes some four seconds from the seeder. */
const LEECHER_RATE = 1024 * 1024;
const TDL_TO_LT_TEST_TIMEOUT_MS = PEX_FIRST_MESSAGE_MS + 60_000;

const gate = programsGate(['libtorrent']);

describe.skipIf(gate.skip)('peer exchange (ut_pex) between tdl and libtorrent', () => {
  let root = '';
  let dataDir = '';
  let torrent = '';

  beforeAll(async () => {
    gate.assertPresent();
    ({ root, dataDir, torrent } = await pexTorrents('tdl-interop-pex-', PAYLOAD, PIECE_LENGTH));
  }, START_TIMEOUT_MS);

  afterAll(() => stopAll(), START_TIMEOUT_MS);

  it(
    "tdl dials a seeder it learns from a libtorrent peer's PEX message and downloads from it",
    () =>
      withPeers(async (started) => {
        const seeder = await startLibtorrentPeer({ torrent, dataDir });
        started.push(seeder);
        const emptyDir = await makeTempDir('tdl-pex-relay-');
        // It has no data to give (4 KiB/s is not a piece in this test's time): only the peer it
        // is connected to has.
        const relay = await startLibtorrentPeer({
          torrent,
          dataDir: emptyDir,
          connect: [`127.0.0.1:${seeder.port}`],
          downloadLimit: 4096,
        });
        started.push(relay);
        const seederAt = `127.0.0.1:${seeder.port}`;
        const { run } = await tdlLearnsSeeder({
          torrent,
          root,
          payloadName: PAYLOAD.name,
          relayAt: `127.0.0.1:${relay.port}`,
          seederAt,
          args: ['--no-dht'],
          timeoutMs: DOWNLOAD_TIMEOUT_MS,
        });
        expect(relay.done()).toBe(false);
        // libtorrent's message lists tdl itself (where it listens): never dialled.
        const peerEvents = run.events.filter((e) => e.event === 'peer');
        const ownPort = run.events.find((e) => e.event === 'started')?.port;
        expect(ownPort).toBeTypeOf('number');
        expect(peerEvents.filter((e) => e.address === `127.0.0.1:${String(ownPort)}`)).toEqual([]);
        await removeTempDir(emptyDir);
      }),
    TEST_TIMEOUT_MS,
  );

  it(
    "a libtorrent peer dials a seeder it learns from tdl's PEX message and downloads from it",
    () =>
      withPeers(async (started) => {
        const seeder = await startLibtorrentPeer({ torrent, dataDir, disablePex: true });
        started.push(seeder);
        const seederAt = `127.0.0.1:${seeder.port}`;
        const tdlOut = await makeTempDir('tdl-pex-tdl-');
        // Slow enough that tdl has a fraction of the data when its PEX message goes out.
        const tdl = await startTdlPeer({
          command: 'download',
          torrent,
          out: tdlOut,
          peers: [seederAt],
          args: ['--no-dht', '--max-download-rate', '16K'],
          timeoutMs: START_TIMEOUT_MS,
        });
        try {
          await tdl.waitForEvent('peer');
          const out = await makeTempDir('tdl-pex-lt-');
          // Throttled too: its peers are seen by polling, a tenth of a second apart, and an
          // unthrottled download from the seeder on loopback can begin and end between two
          // polls (the seeder then leaves it, and is never seen).
          const leecher = await startLibtorrentPeer({
            torrent,
            dataDir: out,
            connect: [`127.0.0.1:${tdl.port}`],
            downloadLimit: LEECHER_RATE,
          });
          started.push(leecher);
          await leecher.waitFor(
            () => leecher.done(),
            'the libtorrent downloader to have every piece',
            PEX_FIRST_MESSAGE_MS + DOWNLOAD_TIMEOUT_MS,
          );
          // tdl was its only other peer, and had a fraction of the pieces at 16 KiB/s.
          expect(leecher.peers.get(seederAt)).toContain('pex');
          // Stopped before its files are read (once only: it leaves the list stopped at the end).
          started.splice(started.indexOf(leecher), 1);
          await leecher.stop();
          expect(await compareTrees(root, path.join(out, PAYLOAD.name))).toEqual([]);
          await removeTempDir(out);
        } finally {
          await tdl.stop();
          await removeTempDir(tdlOut);
        }
      }),
    TDL_TO_LT_TEST_TIMEOUT_MS,
  );
});
