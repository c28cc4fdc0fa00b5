// @ts-check
/**
 * The dht scenario: tdl finds its only seeder through the DHT, on a loopback network of 24
 * independent DHT nodes (the npm `bittorrent-dht` package, a devDependency; the same recipe as
 * test/helpers/dht-network.ts), and downloads 32 MiB from it:
 *
 * - a trackerless .torrent, and a magnet link without `tr`, with `--dht-bootstrap` naming one
 *   node of the network (a cold start: a cache folder of its own every run, no dht.dat);
 * - the same data through opentracker (a .torrent with the tracker, `--no-dht`), from another
 *   `tdl seed` of the same data that announced to the tracker only.
 *
 * The DHT seeder is `tdl seed` of the trackerless .torrent with `--dht-bootstrap`: it announced
 * itself to the DHT only (the bench waits until a node of the network finds it).
 * Reports the time to the first peer (tdl's `peer` event with `source` `dht`, or `tracker`, by
 * time of receipt since spawn) and the total time. libtorrent's DHT does not work on loopback
 * here (see /work/shared/REAL-PEERS.md), so there is no libtorrent row.
 *
 * Targets: first DHT peer within 2 s of start; the download no slower than through the tracker
 * plus 1 s (medians).
 *
 * `npm run bench -- --scenario dht --runs 5`.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import DHT from 'bittorrent-dht';
import {
  assertTdlOk,
  createTorrent,
  magnetLink,
  makePayload,
  makeTempDir,
  missingPrograms,
  removeTempDir,
  startOpentracker,
  startTdlPeer,
  stopAll,
  tdlDownload,
  waitForSeeders,
} from './real-peers.mjs';
import { assertSameTree, median, rotatedRuns, sec } from './bench-common.mjs';

export const DHT_SCENARIOS = ['dht'];

const MiB = 1024 * 1024;
const SIZE = 32 * MiB;
const PIECE_LENGTH = 256 * 1024;
const NODES = 24;
/** Target: the first DHT peer within this long of tdl's start. */
const FIRST_PEER_MS = 2000;
/** Target: through the DHT at most this much slower than through the tracker. */
const SLACK_MS = 1000;
/** How long the seeder may take to be found in the DHT after it started. */
const ANNOUNCED_TIMEOUT_MS = 60_000;

/** @param {string} msg */
const log = (msg) => console.error(msg);
/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * @typedef {{ dht: any, port: number }} Node
 * @typedef {{ nodes: Node[], lookup: (index: number, infoHash: Buffer) => Promise<number[]>,
 *   close: () => Promise<void> }} Network
 */

/**
 * `count` bittorrent-dht nodes on 127.0.0.1, each bootstrapped to node 0 and one earlier node
 * (seeded choice), then a second find_node round so early nodes learn of later ones.
 * @param {number} count
 * @param {number} [seed]
 * @returns {Promise<Network>}
 */
async function startDhtNetwork(count, seed = 1) {
  /** @type {Node[]} */
  const nodes = [];
  let rnd = seed >>> 0 || 1;
  const next = () => {
    rnd = (rnd * 1103515245 + 12345) >>> 0;
    return rnd;
  };
  const close = async () => {
    await Promise.all(nodes.map((n) => new Promise((r) => n.dht.destroy(() => r(undefined)))));
  };
  try {
    for (let i = 0; i < count; i++) {
      const bootstrap =
        i === 0
          ? false
          : [...new Set([0, next() % i])].map((j) => `127.0.0.1:${nodes[j]?.port ?? 0}`);
      const dht = new DHT(/** @type {any} */ ({ bootstrap, host: '127.0.0.1' }));
      dht.on('error', () => {});
      dht.on('warning', () => {});
      const port = await new Promise((resolve, reject) => {
        dht.once('error', reject);
        dht.listen(0, '127.0.0.1', () => {
          dht.off('error', reject);
          resolve(/** @type {{ port: number }} */ (dht.address()).port);
        });
      });
      nodes.push({ dht, port });
      if (!(/** @type {any} */ (dht).ready)) await new Promise((r) => dht.once('ready', r));
    }
    await Promise.all(
      nodes.map(
        (n) =>
          new Promise((resolve) => {
            const rpc = n.dht._rpc;
            rpc.populate(rpc.id, { q: 'find_node', a: { id: rpc.id, target: rpc.id } }, () =>
              resolve(undefined),
            );
          }),
      ),
    );
  } catch (err) {
    await close();
    throw err;
  }
  return {
    nodes,
    lookup: (index, infoHash) =>
      new Promise((resolve, reject) => {
        const dht = nodes[index]?.dht;
        /** @type {number[]} */
        const ports = [];
        /** @param {{ host: string, port: number }} peer @param {Buffer} ih */
        const onPeer = (peer, ih) => {
          if (Buffer.from(ih).equals(infoHash)) ports.push(peer.port);
        };
        dht.on('peer', onPeer);
        dht.lookup(infoHash, (/** @type {Error | undefined} */ err) => {
          dht.off('peer', onPeer);
          if (err) reject(err);
          else resolve(ports);
        });
      }),
    close,
  };
}

/**
 * @typedef {{ wallMs: number, firstPeerMs: number | null, metadataMs: number | null }} Sample
 * @typedef {{ id: string, label: string, origin: 'dht' | 'tracker' }} Row
 */

/** @type {Row[]} */
const ROWS = [
  { id: 'dht-torrent', label: 'trackerless .torrent, DHT', origin: 'dht' },
  { id: 'dht-magnet', label: 'magnet link without `tr`, DHT', origin: 'dht' },
  { id: 'tracker', label: '.torrent with a tracker, `--no-dht`', origin: 'tracker' },
];

/**
 * @param {string[]} names
 * @param {number} runs
 * @param {number} timeoutMs
 * @returns {Promise<{ markdown: string, checks: { pass: boolean, text: string }[] }>}
 */
export async function runDhtBench(names, runs, timeoutMs) {
  if (!names.includes('dht')) return { markdown: '', checks: [] };
  if (missingPrograms(['opentracker']).length > 0) {
    throw new Error('missing opentracker: apt-get install -y opentracker');
  }
  log(`scenario dht: 32 MiB from a tdl seeder found through ${NODES} loopback DHT nodes`);
  const work = await makeTempDir('tdl-bench-dht-');
  /** @type {Record<string, Sample[]>} */
  const samples = Object.fromEntries(ROWS.map((r) => [r.id, []]));
  /** @type {Network | null} */
  let net = null;
  try {
    const name = 'bench-dht-32MiB.bin';
    const dhtData = path.join(work, 'dht-data');
    const root = await makePayload(dhtData, { name, size: SIZE });
    // The tracker's seeder gets a copy of its own: two tdl processes never share an output.
    const trackerData = path.join(work, 'tracker-data');
    await mkdir(trackerData);
    await copyFile(root, path.join(trackerData, name));
    const tracker = await startOpentracker();
    // The announce URL is outside the info dictionary: both torrents have the same info hash.
    const trackerless = await createTorrent({
      source: root,
      out: path.join(work, `${name}.dht.torrent`),
      pieceLength: PIECE_LENGTH,
      trackers: [],
    });
    const withTracker = await createTorrent({
      source: root,
      out: path.join(work, `${name}.tracker.torrent`),
      pieceLength: PIECE_LENGTH,
      trackers: [[tracker.httpUrl]],
    });
    if (trackerless.infoHashHex !== withTracker.infoHashHex) {
      throw new Error('the two torrents of the same data have different info hashes');
    }
    const infoHashHex = trackerless.infoHashHex;
    const infoHash = Buffer.from(infoHashHex, 'hex');
    await tracker.addInfoHash(infoHashHex);

    net = await startDhtNetwork(NODES);
    log(`  ${NODES} DHT nodes on 127.0.0.1 (ports ${net.nodes.map((n) => n.port).join(',')})`);
    /** @param {string} dir */
    const cacheEnv = async (dir) => {
      await mkdir(dir, { recursive: true });
      return { ...process.env, XDG_CACHE_HOME: dir };
    };
    const dhtSeeder = await startTdlPeer({
      command: 'seed',
      torrent: trackerless.path,
      out: root,
      args: ['--dht-bootstrap', `127.0.0.1:${net.nodes[1]?.port}`],
      env: await cacheEnv(path.join(work, 'cache-dht-seeder')),
    });
    const trackerSeeder = await startTdlPeer({
      command: 'seed',
      torrent: withTracker.path,
      out: path.join(trackerData, name),
      args: ['--no-dht'],
      env: await cacheEnv(path.join(work, 'cache-tracker-seeder')),
    });
    await waitForSeeders(tracker.httpUrl, infoHashHex, 1);
    // Wait until the network knows the DHT seeder (its lookup and announce run at start).
    const t0 = Date.now();
    for (let i = 0; ; i++) {
      const ports = await net
        .lookup((i * 7 + 5) % NODES, infoHash)
        .catch(() => /** @type {number[]} */ ([]));
      if (ports.includes(dhtSeeder.port)) break;
      if (Date.now() - t0 > ANNOUNCED_TIMEOUT_MS) {
        throw new Error(`the DHT seeder (port ${dhtSeeder.port}) was not found in the DHT`);
      }
      await sleep(200);
    }
    log(
      `  DHT seeder :${dhtSeeder.port} found in the DHT after ${Date.now() - t0} ms; ` +
        `tracker seeder :${trackerSeeder.port}`,
    );

    const magnet = magnetLink(infoHashHex, { name });
    await rotatedRuns(ROWS, runs, 'tdl-bench-dht-out-', async (row, out, run) => {
      await waitForSeeders(tracker.httpUrl, infoHashHex, 1, 30_000);
      const boot = net.nodes[(run * 11 + 7) % NODES]?.port;
      const args =
        row.origin === 'dht'
          ? ['--quiet', '--port', '0', '--dht-bootstrap', `127.0.0.1:${boot}`]
          : ['--quiet', '--port', '0', '--no-dht'];
      /** @type {number | null} */
      let firstPeerMs = null;
      /** @type {number | null} */
      let metadataMs = null;
      const r = await tdlDownload({
        torrent:
          row.id === 'dht-magnet'
            ? magnet
            : row.id === 'dht-torrent'
              ? trackerless.path
              : withTracker.path,
        out,
        timeoutMs,
        args,
        env: await cacheEnv(path.join(out, '.cache')),
        onEvent: (e, t) => {
          if (firstPeerMs === null && e.event === 'peer' && e.source === row.origin) {
            firstPeerMs = t;
          }
          if (e.event === 'metadata' && e.state === 'done') metadataMs = t;
        },
      });
      assertTdlOk(r);
      await assertSameTree(row.id, root, path.join(out, name));
      samples[row.id]?.push({ wallMs: r.wallMs, firstPeerMs, metadataMs });
      log(
        `  run ${run + 1}/${runs} ${row.id.padEnd(11)} ${sec(r.wallMs)} s, first ` +
          `${row.origin} peer ${firstPeerMs === null ? 'never seen' : `${sec(firstPeerMs)} s`}` +
          (metadataMs !== null ? `, metadata at ${sec(metadataMs)} s` : ''),
      );
    });
    await dhtSeeder.stop();
    await trackerSeeder.stop();
    await tracker.stop();
  } finally {
    await net?.close();
    await stopAll();
    await removeTempDir(work);
  }

  /** @param {string} id */
  const wall = (id) => median((samples[id] ?? []).map((s) => s.wallMs));
  /** @param {string} id @returns {number[]} */
  const firsts = (id) =>
    (samples[id] ?? []).map((s) => (s.firstPeerMs === null ? Infinity : s.firstPeerMs));
  const lines = ROWS.map((row) => {
    const f = firsts(row.id);
    const walls = (samples[row.id] ?? []).map((s) => s.wallMs);
    const meta = (samples[row.id] ?? []).map((s) => s.metadataMs).filter((m) => m !== null);
    return (
      `| ${row.label} | ${sec(median(f))} | ${sec(Math.max(...f))} | ` +
      `${meta.length > 0 ? sec(median(meta)) : '–'} | ${sec(wall(row.id))} | ` +
      `${sec(Math.min(...walls))}–${sec(Math.max(...walls))} |`
    );
  });
  const markdown = [
    `### dht: 32 MiB from one tdl seeder found through ${NODES} loopback DHT nodes, against the same through a tracker (${runs} runs each)`,
    '',
    '| tdl downloads | first peer s (median) | first peer s (max) | metadata at s (median) | total s (median) | total min–max s |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...lines,
    '',
    `The DHT is ${NODES} independent \`bittorrent-dht\` nodes on 127.0.0.1; each DHT run starts ` +
      'cold (a cache folder of its own, one `--dht-bootstrap` node). The DHT seeder is a ' +
      '`tdl seed` of the trackerless .torrent that announced itself to the DHT only; the tracker ' +
      'row downloads from another `tdl seed` of the same data that announced to opentracker only. ' +
      'First peer: the first `peer` event whose `source` is `dht` (`tracker` for the last row), ' +
      'by time of receipt since spawn. tdl reports `peer` events once it has the metadata, so ' +
      'for the magnet link the first peer is when the data phase met its first DHT peer, an ' +
      'upper bound of when the DHT first gave one. ' +
      "No libtorrent row: libtorrent's DHT ignores loopback nodes and found no peer here " +
      '(see REAL-PEERS.md), so there is no fair comparison to make.',
  ].join('\n');
  /** @type {{ pass: boolean, text: string }[]} */
  const checks = [];
  for (const id of ['dht-torrent', 'dht-magnet']) {
    const f = median(firsts(id));
    checks.push({
      pass: f <= FIRST_PEER_MS,
      text: `dht: ${id} first DHT peer ${sec(f)} s (median) <= ${sec(FIRST_PEER_MS)} s`,
    });
    checks.push({
      pass: wall(id) <= wall('tracker') + SLACK_MS,
      text:
        `dht: ${id} total ${sec(wall(id))} s <= through the tracker ${sec(wall('tracker'))} s ` +
        `+ ${sec(SLACK_MS)} s`,
    });
  }
  return { markdown, checks };
}
