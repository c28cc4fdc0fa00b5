/**
 * Magnet links between tdl and real clients, through a real opentracker on 127.0.0.1:
 * - tdl opens a magnet link served by a libtorrent seeder, and one served by an aria2c seeder
 *   (ut_metadata from them, then the data), byte for byte;
 * - aria2c fetches only the metadata from `tdl seed` and saves a .torrent of the same info hash;
 * - libtorrent downloads a magnet link whose only seeder is `tdl seed`, byte for byte.
 * One seeder per torrent, so we know who served each download. No DHT anywhere (`--no-dht`):
 * the magnet's `tr` (and `x.pe`) are the only sources.
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import {
  aria2FetchMetadata,
  assertTdlOk,
  compareTrees,
  libtorrentMagnetDownload,
  magnetLink,
  makeTempDir,
  removeTempDir,
  startAria2Seeder,
  startLibtorrentSeeder,
  startOpentracker,
  startTdlPeer,
  stopAll,
  tdlDownload,
  waitForSeeders,
  type PayloadSpec,
  type TdlPeer,
  type Tracker,
} from '../../scripts/lib/real-peers.mjs';
import { checkEvent } from '../helpers/events-schema.js';
import {
  DOWNLOAD_TIMEOUT_MS,
  MULTI_FILE,
  SETUP_TIMEOUT_MS,
  START_TIMEOUT_MS,
  TEST_TIMEOUT_MS,
  preparePayload,
  programsGate,
  type Payload,
} from './swarm.js';

/** A magnet download waits for the metadata first: give it more time than a .torrent. */
const MAGNET_TIMEOUT_MS = DOWNLOAD_TIMEOUT_MS + 10_000;
const MAGNET_TEST_TIMEOUT_MS = TEST_TIMEOUT_MS + 10_000;

const LT_PAYLOAD: PayloadSpec = { name: 'magnet-lt.bin', size: 4 * 1024 * 1024 + 12_345 };
const TDL_PAYLOAD: PayloadSpec = { name: 'magnet-tdl.bin', size: 3 * 1024 * 1024 + 777 };

const gate = programsGate(['opentracker', 'libtorrent', 'aria2c']);

describe.skipIf(gate.skip)('magnet links between tdl and real clients', () => {
  let tracker: Tracker;
  /** served by libtorrent only */
  let fromLt: Payload;
  /** served by aria2c only (a multi-file torrent) */
  let fromAria2: Payload;
  /** served by `tdl seed` only */
  let fromTdl: Payload;
  let tdlSeeder: TdlPeer;
  let ltSeederPort: number;

  beforeAll(async () => {
    gate.assertPresent();
    const work = await makeTempDir('tdl-interop-magnet-');
    tracker = await startOpentracker({ timeoutMs: START_TIMEOUT_MS });
    fromLt = await preparePayload(work, LT_PAYLOAD, tracker);
    fromAria2 = await preparePayload(work, MULTI_FILE, tracker);
    fromTdl = await preparePayload(work, TDL_PAYLOAD, tracker);
    const ltSeeder = await startLibtorrentSeeder({
      torrent: fromLt.httpTorrent,
      dataDir: fromLt.dataDir,
      timeoutMs: START_TIMEOUT_MS,
    });
    ltSeederPort = ltSeeder.port;
    await startAria2Seeder({
      torrent: fromAria2.httpTorrent,
      dataDir: fromAria2.dataDir,
      timeoutMs: START_TIMEOUT_MS,
    });
    tdlSeeder = await startTdlPeer({
      command: 'seed',
      torrent: fromTdl.httpTorrent,
      out: fromTdl.root,
      args: ['--no-dht'],
      timeoutMs: START_TIMEOUT_MS,
    });
    for (const p of [fromLt, fromAria2, fromTdl]) {
      await waitForSeeders(tracker.httpUrl, p.infoHashHex, 1, START_TIMEOUT_MS);
    }
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    // tdl leaves cleanly on SIGINT (exit 0); everything else is killed with its group.
    const exit = tdlSeeder ? await tdlSeeder.stop() : null;
    await stopAll();
    if (tdlSeeder) expect(exit?.code).toBe(0);
  }, SETUP_TIMEOUT_MS);

  /** tdl downloads `payload` from a magnet link of its info hash and the tracker. */
  const tdlFromMagnet = async (payload: Payload) => {
    const out = await makeTempDir('tdl-magnet-out-');
    try {
      const magnet = magnetLink(payload.infoHashHex, {
        name: payload.name,
        trackers: [tracker.httpUrl],
      });
      const run = await tdlDownload({
        torrent: magnet,
        out,
        timeoutMs: MAGNET_TIMEOUT_MS,
        args: ['--no-dht'],
      });
      assertTdlOk(run);
      expect(run.code).toBe(0);
      for (const e of run.events) checkEvent(e);
      const done = run.events.find((e) => e.event === 'metadata' && e.state === 'done');
      expect(done, 'a metadata event with state done').toBeDefined();
      expect(done?.infoHash).toBe(payload.infoHashHex);
      expect(await compareTrees(payload.root, path.join(out, payload.name))).toEqual([]);
    } finally {
      await removeTempDir(out);
    }
  };

  it(
    'tdl downloads from a magnet link served by a libtorrent seeder',
    () => tdlFromMagnet(fromLt),
    MAGNET_TEST_TIMEOUT_MS,
  );

  it(
    'tdl downloads a multi-file torrent from a magnet link served by an aria2c seeder',
    () => tdlFromMagnet(fromAria2),
    MAGNET_TEST_TIMEOUT_MS,
  );

  it(
    'aria2c fetches the metadata from tdl seed and saves a .torrent of the same info hash',
    async () => {
      const out = await makeTempDir('tdl-magnet-aria2-');
      try {
        // aria2c 1.36 ignores x.pe (without tr it finds nobody): the tracker leads it to tdl.
        const magnet = magnetLink(fromTdl.infoHashHex, {
          trackers: [tracker.httpUrl],
          peers: [`127.0.0.1:${tdlSeeder.port}`],
        });
        const run = await aria2FetchMetadata({ magnet, outDir: out, timeoutMs: MAGNET_TIMEOUT_MS });
        expect(run.code).toBe(0);
        const saved = parseTorrent(await readFile(run.torrentPath));
        expect(saved.infoHashHex).toBe(fromTdl.infoHashHex);
        const original = parseTorrent(await readFile(fromTdl.httpTorrent));
        expect(saved.name).toBe(original.name);
        expect(saved.length).toBe(original.length);
        expect(saved.pieceCount).toBe(original.pieceCount);
      } finally {
        await removeTempDir(out);
      }
    },
    MAGNET_TEST_TIMEOUT_MS,
  );

  it(
    'libtorrent downloads a magnet link whose only seeder is tdl seed',
    async () => {
      const out = await makeTempDir('tdl-magnet-lt-');
      try {
        const magnet = magnetLink(fromTdl.infoHashHex, {
          name: fromTdl.name,
          trackers: [tracker.httpUrl],
        });
        const run = await libtorrentMagnetDownload({
          magnet,
          outDir: out,
          timeoutMs: MAGNET_TIMEOUT_MS,
        });
        expect(run.code).toBe(0);
        expect(run.metadataMs).toBeGreaterThanOrEqual(0);
        expect(await compareTrees(fromTdl.root, path.join(out, fromTdl.name))).toEqual([]);
      } finally {
        await removeTempDir(out);
      }
    },
    MAGNET_TEST_TIMEOUT_MS,
  );

  // The metadata phase's connection is handed to the download (docs/DESIGN.md, "Magnet
  // hand-over"): no second TCP connect, handshake and extension handshake per peer.
  it(
    'keeps the metadata connection to a peer for the data (one TCP connection)',
    async () => {
      // A counting TCP relay in front of the libtorrent seeder, the magnet's only peer (x.pe).
      let connections = 0;
      const sockets = new Set<net.Socket>();
      const relay = net.createServer((client) => {
        connections++;
        const upstream = net.connect({ host: '127.0.0.1', port: ltSeederPort });
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('error', () => {
            client.destroy();
            upstream.destroy();
          });
          s.on('close', () => sockets.delete(s));
        }
        client.pipe(upstream);
        upstream.pipe(client);
      });
      await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
      const relayPort = (relay.address() as net.AddressInfo).port;
      const out = await makeTempDir('tdl-magnet-relay-');
      try {
        const magnet = magnetLink(fromLt.infoHashHex, { peers: [`127.0.0.1:${relayPort}`] });
        const run = await tdlDownload({
          torrent: magnet,
          out,
          timeoutMs: MAGNET_TIMEOUT_MS,
          args: ['--no-dht', '--no-listen'],
        });
        assertTdlOk(run);
        expect(await compareTrees(fromLt.root, path.join(out, fromLt.name))).toEqual([]);
        expect(connections).toBe(1);
      } finally {
        for (const sock of sockets) sock.destroy();
        await new Promise((resolve) => relay.close(resolve));
        await removeTempDir(out);
      }
    },
    MAGNET_TEST_TIMEOUT_MS,
  );
});
