/**
 * Peer exchange (BEP 11, ut_pex) between tdl and transmission-daemon, both ways, with no tracker
 * and no DHT: each program is given its peers explicitly, so the third peer can only be learnt
 * by PEX. transmission keeps one connection per IP address, so each program has an address of
 * its own in 127.0.0.0/8.
 *
 * What transmission 3.00 does: it sends its first message within a second of the extension
 * handshake, listing its connected peers, incoming ones too (at the port their extension
 * handshake gave). It takes no loopback address from a PEX message: libtransmission's
 * `tr_address_is_valid_for_peers` calls 127.0.0.0/8 "martian" (isMartianAddr in net.c; later
 * versions allow loopback only from incoming connections, LPD and resume files). So a peer it
 * is to learn from tdl must listen on another address of this machine (skipped without one),
 * and, since a socket bound to 127.0.0.x cannot reach that address, tdl and transmission are
 * not bound there (they reach each other on 127.0.0.1, and the seeder at its address).
 * - tdl is given only a transmission peer that has no data (1 KB/s) and that a libtorrent seeder
 *   dialled: transmission's first message names the seeder, which tdl dials and downloads from.
 * - transmission is given nothing, and tdl dials it; tdl downloads at 16 KiB/s from a libtorrent
 *   seeder with PEX off that listens on a non-loopback address. tdl's first PEX message, a
 *   minute after the extension handshake, names the seeder; transmission dials it and finishes.
 * - a private torrent: tdl offers no ut_pex, and never hears of the seeder.
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
  type LibtorrentPeer,
  type PayloadSpec,
} from '../../scripts/lib/real-peers.mjs';
import {
  nonLoopbackIPv4,
  pexTorrents,
  tdlLearnsSeeder,
  withPeers,
  type Started,
  startTransmissionPeer,
  waitFor,
  type TransmissionPeer,
} from './pex-peers.js';
import { PIECE_LENGTH, START_TIMEOUT_MS, programsGate } from './swarm.js';

const PAYLOAD: PayloadSpec = { name: 'pex-transmission.bin', size: 4 * 1024 * 1024 + 4321 };
/** tdl's first PEX message goes a minute after the extension handshake (docs/DESIGN.md, "PEX"). */
const PEX_FIRST_MESSAGE_MS = 60_000;
/** Generous bounds: transmission is slow on loopback, and the machine may be busy. */
const DOWNLOAD_TIMEOUT_MS = 60_000;
const SETUP_TIMEOUT_MS = 2 * START_TIMEOUT_MS;
const TEST_TIMEOUT_MS = SETUP_TIMEOUT_MS + DOWNLOAD_TIMEOUT_MS;
const TDL_TO_TRANSMISSION_TEST_TIMEOUT_MS = TEST_TIMEOUT_MS + PEX_FIRST_MESSAGE_MS;
/** How long the private-torrent download is left to find the seeder (it must not). */
const PRIVATE_WAIT_MS = 15_000;

const TDL_HOST = '127.0.0.12';
const TRANSMISSION_HOST = '127.0.0.13';
/** Where the seeder listens for transmission to learn it by PEX (not loopback). */
const OTHER_HOST = nonLoopbackIPv4();

const gate = programsGate(['libtorrent', 'transmission-daemon', 'transmission-remote']);

describe.skipIf(gate.skip)('peer exchange (ut_pex) between tdl and transmission-daemon', () => {
  let root = '';
  let dataDir = '';
  let torrent = '';
  let privateTorrent = '';

  beforeAll(async () => {
    gate.assertPresent();
    ({ root, dataDir, torrent, privateTorrent } = await pexTorrents(
      'tdl-interop-pex-transmission-',
      PAYLOAD,
      PIECE_LENGTH,
    ));
  }, START_TIMEOUT_MS);

  afterAll(() => stopAll(), START_TIMEOUT_MS);

  /** A transmission peer with no data (1 KB/s), and a libtorrent seeder that dialled it. */
  const relaySetup = async (
    t: string,
    started: Started,
  ): Promise<{ seeder: LibtorrentPeer; relay: TransmissionPeer }> => {
    const relay = await startTransmissionPeer({
      torrent: t,
      dir: await makeTempDir('tdl-pex-transmission-relay-'),
      host: TRANSMISSION_HOST,
      downloadLimit: 1,
      timeoutMs: START_TIMEOUT_MS,
    });
    started.push(relay);
    const seeder = await startLibtorrentPeer({
      torrent: t,
      dataDir,
      connect: [`${TRANSMISSION_HOST}:${relay.port}`],
    });
    started.push(seeder);
    await waitFor(
      async () => (await relay.peers()).includes('127.0.0.1'),
      'transmission to list the seeder among its peers',
      START_TIMEOUT_MS,
    );
    return { seeder, relay };
  };

  it(
    "tdl dials a seeder it learns from a transmission peer's PEX message and downloads from it",
    () =>
      withPeers(async (started) => {
        const { seeder, relay } = await relaySetup(torrent, started);
        const seederAt = `127.0.0.1:${seeder.port}`;
        const { run, learntAt } = await tdlLearnsSeeder({
          torrent,
          root,
          payloadName: PAYLOAD.name,
          relayAt: `${TRANSMISSION_HOST}:${relay.port}`,
          seederAt,
          args: ['--no-dht', '--bind', TDL_HOST],
          timeoutMs: DOWNLOAD_TIMEOUT_MS,
        });
        expect(await relay.percentDone()).toBeLessThan(100);
        console.info(
          `transmission -> tdl: seeder learnt by PEX ${learntAt} ms after tdl started, ` +
            `download done at ${Math.round(run.wallMs)} ms`,
        );
      }),
    TEST_TIMEOUT_MS,
  );

  it.skipIf(OTHER_HOST === null)(
    "a transmission peer dials a seeder it learns from tdl's PEX message and downloads from it",
    () =>
      withPeers(async (started) => {
        const host = OTHER_HOST as string;
        const seeder = await startLibtorrentPeer({ torrent, dataDir, disablePex: true, host });
        started.push(seeder);
        const seederAt = `${host}:${seeder.port}`;
        const trDir = await makeTempDir('tdl-pex-transmission-leech-');
        // Throttled (KB/s): its peers are seen by polling, and a download from the seeder that
        // begins and ends between two polls would leave the seeder unseen.
        const leecher = await startTransmissionPeer({
          torrent,
          dir: trDir,
          downloadLimit: 1024,
          timeoutMs: START_TIMEOUT_MS,
        });
        started.push(leecher);
        const tdlOut = await makeTempDir('tdl-pex-transmission-tdl-');
        // Slow enough that tdl has a fraction of the data when its PEX message goes out.
        const tdl = await startTdlPeer({
          command: 'download',
          torrent,
          out: tdlOut,
          peers: [seederAt, `${leecher.host}:${leecher.port}`],
          args: ['--no-dht', '--bind', '0.0.0.0', '--max-download-rate', '16K'],
          timeoutMs: START_TIMEOUT_MS,
        });
        started.push(tdl);
        const t0 = Date.now();
        let learntAt = -1;
        await waitFor(
          async () => {
            if (learntAt < 0 && (await leecher.peers()).includes(host)) learntAt = Date.now() - t0;
            return (await leecher.percentDone()) === 100;
          },
          'the transmission downloader to finish',
          PEX_FIRST_MESSAGE_MS + DOWNLOAD_TIMEOUT_MS,
        );
        const doneAt = Date.now() - t0;
        // The seeder has PEX off and was given no peer: transmission dialled it (tdl reaches
        // transmission from 127.0.0.1, so the seeder's address in its list is the seeder).
        expect(learntAt).toBeGreaterThanOrEqual(0);
        // Stopped before its files are read.
        started.splice(started.indexOf(leecher), 1);
        await leecher.stop();
        expect(await compareTrees(root, path.join(trDir, PAYLOAD.name))).toEqual([]);
        console.info(
          `tdl -> transmission: seeder connected ~${learntAt} ms after tdl started, ` +
            `transmission done at ~${doneAt} ms`,
        );
        await removeTempDir(trDir);
      }),
    TDL_TO_TRANSMISSION_TEST_TIMEOUT_MS,
  );

  it(
    'a private torrent: tdl offers no ut_pex and never hears of the seeder',
    () =>
      withPeers(async (started) => {
        const { seeder, relay } = await relaySetup(privateTorrent, started);
        const out = await makeTempDir('tdl-pex-transmission-private-');
        const tdl = await startTdlPeer({
          command: 'download',
          torrent: privateTorrent,
          out,
          peers: [`${TRANSMISSION_HOST}:${relay.port}`],
          args: ['--no-dht', '--bind', TDL_HOST],
          timeoutMs: START_TIMEOUT_MS,
        });
        started.push(tdl);
        await tdl.waitForEvent('peer');
        await new Promise((r) => setTimeout(r, PRIVATE_WAIT_MS));
        expect(tdl.events).toContainEqual(
          expect.objectContaining({
            address: `${TRANSMISSION_HOST}:${relay.port}`,
            status: 'connected',
          }),
        );
        expect(tdl.events.filter((e) => e.address === `127.0.0.1:${seeder.port}`)).toEqual([]);
      }),
    TEST_TIMEOUT_MS,
  );
});
