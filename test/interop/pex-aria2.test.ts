/**
 * Peer exchange (BEP 11, ut_pex) between tdl and aria2c, both ways, with no DHT and no tracker
 * that tdl or the peer that is to learn could use: each program is given its peers explicitly,
 * so the third peer can only be learnt by PEX. Each program has an address of its own in
 * 127.0.0.0/8: aria2c leaves out of a PEX message the peers that share the receiver's address.
 *
 * What aria2c 1.36 does (seen in its log, and its source: DefaultBtInteractive.cc,
 * UTPexExtensionMessage.cc): it sends its first message at once after the extension handshakes,
 * then one a minute; it lists only peers it dialled itself (never incoming ones), first contacted
 * in the last minute; it sends `added` with `added.f` (0x02 for a seed, nothing else) and
 * `dropped`, leaving out the empty lists. It takes every `added` and `dropped` peer it is sent.
 * It drops a connection that carried no request or piece for 60 s.
 * - tdl is given only an aria2c peer that has no data (4 KiB/s) and dialled a libtorrent seeder
 *   (the one peer a tracker given to aria2c alone names): aria2c's first message names the
 *   seeder, which tdl dials and downloads from.
 * - aria2c is given nothing, and tdl dials it; tdl downloads at 16 KiB/s from a libtorrent seeder
 *   with PEX off (which cannot tell aria2c about itself). tdl's first PEX message, a minute after
 *   aria2c's extension handshake, names the seeder; aria2c dials it and finishes. This needs tdl
 *   to read aria2c's `interested` while its download limit holds the sockets (and so unchoke it,
 *   keeping the connection busy past aria2c's 60 s idle limit).
 * - a private torrent: tdl offers no ut_pex, aria2c sends it none, tdl never hears of the seeder.
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
import { startHttpTracker, type FakeTracker } from '../helpers/fake-tracker.js';
import {
  pexTorrents,
  tdlLearnsSeeder,
  startAria2Peer,
  waitFor,
  withPeers,
  type Aria2Peer,
  type Started,
} from './pex-peers.js';
import { PIECE_LENGTH, START_TIMEOUT_MS, programsGate } from './swarm.js';

const PAYLOAD: PayloadSpec = { name: 'pex-aria2.bin', size: 4 * 1024 * 1024 + 4321 };
/** tdl's first PEX message goes a minute after the extension handshake (docs/DESIGN.md, "PEX"). */
const PEX_FIRST_MESSAGE_MS = 60_000;
/** Generous bounds: a busy machine may be slow to start programs and move bytes. */
const DOWNLOAD_TIMEOUT_MS = 45_000;
const TEST_TIMEOUT_MS = 90_000;
const TDL_TO_ARIA2_TEST_TIMEOUT_MS = PEX_FIRST_MESSAGE_MS + 90_000;
/** How long the private-torrent download is left to find the seeder (it must not). */
const PRIVATE_WAIT_MS = 15_000;

const TDL_HOST = '127.0.0.2';
const ARIA2_HOST = '127.0.0.3';

const gate = programsGate(['libtorrent', 'aria2c']);

/** aria2c's log lines for the ut_pex messages it sent to / received from `host`. */
function pexLines(log: string, dir: 'To' | 'From', host: string): string[] {
  return log
    .split('\n')
    .filter((l) => l.includes(`${dir}: ${host}:`) && l.includes('extended ut_pex'));
}

describe.skipIf(gate.skip)('peer exchange (ut_pex) between tdl and aria2c', () => {
  let root = '';
  let dataDir = '';
  let torrent = '';
  let privateTorrent = '';

  beforeAll(async () => {
    gate.assertPresent();
    ({ root, dataDir, torrent, privateTorrent } = await pexTorrents(
      'tdl-interop-pex-aria2-',
      PAYLOAD,
      PIECE_LENGTH,
    ));
  }, START_TIMEOUT_MS);

  afterAll(() => stopAll(), START_TIMEOUT_MS);

  /** A seeder, and an aria2c peer (no data, 4 KiB/s) that dialled it and knows no other peer. */
  const relaySetup = async (
    t: string,
    started: Started,
  ): Promise<{ seeder: LibtorrentPeer; relay: Aria2Peer }> => {
    const seeder = await startLibtorrentPeer({ torrent: t, dataDir });
    started.push(seeder);
    const tracker: FakeTracker = await startHttpTracker({
      peers: [{ host: '127.0.0.1', port: seeder.port }],
    });
    started.push({ stop: () => tracker.close() });
    const relay = await startAria2Peer({
      torrent: t,
      dir: await makeTempDir('tdl-pex-aria2-relay-'),
      host: ARIA2_HOST,
      trackers: [tracker.url],
      downloadLimit: 4096,
      timeoutMs: START_TIMEOUT_MS,
    });
    started.push(relay);
    await seeder.waitFor(
      () => [...seeder.peers.keys()].some((a) => a.startsWith(`${ARIA2_HOST}:`)),
      'aria2c to connect to the seeder',
      START_TIMEOUT_MS,
    );
    return { seeder, relay };
  };

  it(
    "tdl dials a seeder it learns from an aria2c peer's PEX message and downloads from it",
    () =>
      withPeers(async (started) => {
        const { seeder, relay } = await relaySetup(torrent, started);
        const seederAt = `127.0.0.1:${seeder.port}`;
        const { run, learntAt } = await tdlLearnsSeeder({
          torrent,
          root,
          payloadName: PAYLOAD.name,
          relayAt: `${ARIA2_HOST}:${relay.port}`,
          seederAt,
          args: ['--no-dht', '--bind', TDL_HOST],
          timeoutMs: DOWNLOAD_TIMEOUT_MS,
        });
        expect(relay.done()).toBe(false);
        // aria2c's message: `added` names the seeder (its only peer besides tdl).
        const sent = pexLines(await relay.log(), 'To', TDL_HOST);
        expect(sent[0]).toMatch(/ut_pex added=1, dropped=0/);
        console.info(
          `aria2c -> tdl: seeder learnt by PEX ${learntAt} ms after tdl started, ` +
            `download done at ${Math.round(run.wallMs)} ms`,
        );
      }),
    TEST_TIMEOUT_MS,
  );

  it(
    "an aria2c peer dials a seeder it learns from tdl's PEX message and downloads from it",
    () =>
      withPeers(async (started) => {
        const seeder = await startLibtorrentPeer({ torrent, dataDir, disablePex: true });
        started.push(seeder);
        const seederAt = `127.0.0.1:${seeder.port}`;
        const aria2Dir = await makeTempDir('tdl-pex-aria2-leech-');
        const leecher = await startAria2Peer({
          torrent,
          dir: aria2Dir,
          host: ARIA2_HOST,
          timeoutMs: START_TIMEOUT_MS,
        });
        started.push(leecher);
        const tdlOut = await makeTempDir('tdl-pex-aria2-tdl-');
        // Slow enough that tdl has a fraction of the data when its PEX message goes out.
        const tdl = await startTdlPeer({
          command: 'download',
          torrent,
          out: tdlOut,
          peers: [seederAt, `${ARIA2_HOST}:${leecher.port}`],
          args: ['--no-dht', '--bind', TDL_HOST, '--max-download-rate', '16K'],
          timeoutMs: START_TIMEOUT_MS,
        });
        started.push(tdl);
        const t0 = Date.now();
        let learntAt = -1;
        await waitFor(
          async () => {
            if (learntAt < 0 && pexLines(await leecher.log(), 'From', TDL_HOST).length > 0) {
              learntAt = Date.now() - t0;
            }
            return leecher.done();
          },
          'the aria2c downloader to finish',
          PEX_FIRST_MESSAGE_MS + DOWNLOAD_TIMEOUT_MS,
        );
        const doneAt = Date.now() - t0;
        // aria2c dialled the seeder (which has PEX off and was given no peer): seen in the
        // seeder's peer list, or, when aria2c took its 4 MiB between two of its samples, in
        // aria2c's own log.
        const fromSeeder = [...seeder.peers.keys()].some((a) => a.startsWith(`${ARIA2_HOST}:`));
        const inLog = (await leecher.log()).includes(`127.0.0.1:${seeder.port}`);
        expect(fromSeeder || inLog).toBe(true);
        const received = pexLines(await leecher.log(), 'From', TDL_HOST);
        expect(received[0]).toMatch(/ut_pex added=1, dropped=0/);
        expect(await compareTrees(root, path.join(aria2Dir, PAYLOAD.name))).toEqual([]);
        console.info(
          `tdl -> aria2c: tdl's PEX message read by aria2c ~${learntAt} ms after tdl started, ` +
            `aria2c done at ~${doneAt} ms (seen by the seeder: ${fromSeeder}, in its log: ${inLog})`,
        );
        await removeTempDir(aria2Dir);
      }),
    TDL_TO_ARIA2_TEST_TIMEOUT_MS,
  );

  it(
    'a private torrent: tdl offers no ut_pex, gets no PEX message, never hears of the seeder',
    () =>
      withPeers(async (started) => {
        const { seeder, relay } = await relaySetup(privateTorrent, started);
        const out = await makeTempDir('tdl-pex-aria2-private-');
        const tdl = await startTdlPeer({
          command: 'download',
          torrent: privateTorrent,
          out,
          peers: [`${ARIA2_HOST}:${relay.port}`],
          args: ['--no-dht', '--bind', TDL_HOST],
          timeoutMs: START_TIMEOUT_MS,
        });
        started.push(tdl);
        await tdl.waitForEvent('peer');
        await new Promise((r) => setTimeout(r, PRIVATE_WAIT_MS));
        expect(tdl.events.filter((e) => e.address === `127.0.0.1:${seeder.port}`)).toEqual([]);
        expect(tdl.events).toContainEqual(
          expect.objectContaining({ address: `${ARIA2_HOST}:${relay.port}`, status: 'connected' }),
        );
        const log = await relay.log();
        const handshake = log
          .split('\n')
          .find((l) => l.includes(`From: ${TDL_HOST}:`) && l.includes('extended handshake'));
        expect(handshake).toBeDefined();
        expect(handshake).not.toContain('ut_pex');
        expect(pexLines(log, 'To', TDL_HOST)).toEqual([]);
      }),
    TEST_TIMEOUT_MS,
  );
});
