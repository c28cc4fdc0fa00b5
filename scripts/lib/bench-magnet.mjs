// @ts-check
/**
 * The magnet scenario: 32 MiB from two unthrottled seeders (one libtorrent, one aria2c) found
 * through opentracker, downloaded from a magnet link (`xt` and `tr`, nothing else) and from the
 * .torrent, by tdl, libtorrent's own downloader and aria2c (from the magnet only). No DHT on any
 * side: the tracker is the only source of peers, so the rows differ only by the metadata fetch.
 *
 * Targets: tdl from the magnet at most 1.1 × tdl from the .torrent, and no slower than
 * libtorrent from the magnet (medians).
 *
 * `npm run bench -- --scenario magnet --runs 5`.
 */
import path from 'node:path';
import {
  aria2Download,
  assertTdlOk,
  createTorrent,
  libtorrentDownload,
  libtorrentMagnetDownload,
  magnetLink,
  makePayload,
  makeTempDir,
  removeTempDir,
  startAria2Seeder,
  startLibtorrentSeeder,
  startOpentracker,
  stopAll,
  tdlDownload,
  waitForSeeders,
} from './real-peers.mjs';
import { assertSameTree, median, requirePrograms, rotatedRuns, sec } from './bench-common.mjs';

export const MAGNET_SCENARIOS = ['magnet'];

const MiB = 1024 * 1024;
const SIZE = 32 * MiB;
const PIECE_LENGTH = 256 * 1024;
/** tdl from the magnet: at most this × tdl from the .torrent. */
const MAX_MAGNET_OVER_TORRENT = 1.1;

/**
 * @typedef {{ wallMs: number, metadataMs: number | null }} Sample
 * @typedef {{ id: string, label: string, source: 'magnet' | 'torrent',
 *   run: (ctx: { magnet: string, torrent: string, out: string, timeoutMs: number }) => Promise<Sample> }} Row
 */

/** @type {Row[]} */
const ROWS = [
  {
    id: 'tdl-magnet',
    label: 'tdl',
    source: 'magnet',
    run: async ({ magnet, out, timeoutMs }) => {
      /** @type {number | null} */
      let metadataMs = null;
      const r = await tdlDownload({
        torrent: magnet,
        out,
        timeoutMs,
        args: ['--quiet', '--no-dht'],
        onEvent: (e, t) => {
          if (e.event === 'metadata' && e.state === 'done') metadataMs = t;
        },
      });
      assertTdlOk(r);
      return { wallMs: r.wallMs, metadataMs };
    },
  },
  {
    id: 'tdl-torrent',
    label: 'tdl',
    source: 'torrent',
    run: async ({ torrent, out, timeoutMs }) => {
      const r = await tdlDownload({ torrent, out, timeoutMs, args: ['--quiet', '--no-dht'] });
      assertTdlOk(r);
      return { wallMs: r.wallMs, metadataMs: null };
    },
  },
  {
    id: 'lt-magnet',
    label: 'libtorrent',
    source: 'magnet',
    run: async ({ magnet, out, timeoutMs }) => {
      const r = await libtorrentMagnetDownload({ magnet, outDir: out, timeoutMs });
      return { wallMs: r.wallMs, metadataMs: r.metadataMs >= 0 ? r.metadataMs : null };
    },
  },
  {
    id: 'lt-torrent',
    label: 'libtorrent',
    source: 'torrent',
    run: async ({ torrent, out, timeoutMs }) => {
      const r = await libtorrentDownload({ torrent, outDir: out, timeoutMs });
      return { wallMs: r.wallMs, metadataMs: null };
    },
  },
  {
    id: 'aria2-magnet',
    label: 'aria2c',
    source: 'magnet',
    run: async ({ magnet, out, timeoutMs }) => {
      const r = await aria2Download({ torrent: magnet, outDir: out, timeoutMs });
      return { wallMs: r.wallMs, metadataMs: null };
    },
  },
];

/** @param {string} msg */
const log = (msg) => console.error(msg);

/**
 * @param {string[]} names
 * @param {number} runs
 * @param {number} timeoutMs
 * @returns {Promise<{ markdown: string, checks: { pass: boolean, text: string }[] }>}
 */
export async function runMagnetBench(names, runs, timeoutMs) {
  if (!names.includes('magnet')) return { markdown: '', checks: [] };
  requirePrograms(['opentracker', 'libtorrent', 'aria2c']);
  log(
    'scenario magnet: 32 MiB from a libtorrent and an aria2c seeder, magnet link against .torrent',
  );
  const work = await makeTempDir('tdl-bench-magnet-');
  /** @type {Record<string, Sample[]>} */
  const samples = Object.fromEntries(ROWS.map((r) => [r.id, []]));
  try {
    const dataDir = path.join(work, 'data');
    const name = 'bench-magnet-32MiB.bin';
    const root = await makePayload(dataDir, { name, size: SIZE });
    const tracker = await startOpentracker();
    const torrent = await createTorrent({
      source: root,
      out: path.join(work, `${name}.torrent`),
      pieceLength: PIECE_LENGTH,
      trackers: [[tracker.httpUrl]],
    });
    await tracker.addInfoHash(torrent.infoHashHex);
    const magnet = magnetLink(torrent.infoHashHex, { name, trackers: [tracker.httpUrl] });
    const seeders = [
      await startLibtorrentSeeder({ torrent: torrent.path, dataDir }),
      await startAria2Seeder({ torrent: torrent.path, dataDir }),
    ];
    await waitForSeeders(tracker.httpUrl, torrent.infoHashHex, seeders.length);
    log(`  seeders: ${seeders.map((s) => `${s.name} :${s.port}`).join(', ')}; ${magnet}`);
    await rotatedRuns(ROWS, runs, 'tdl-bench-magnet-out-', async (row, out, run) => {
      await waitForSeeders(tracker.httpUrl, torrent.infoHashHex, seeders.length, 30_000);
      const s = await row.run({ magnet, torrent: torrent.path, out, timeoutMs });
      await assertSameTree(row.id, root, path.join(out, name));
      samples[row.id]?.push(s);
      log(
        `  run ${run + 1}/${runs} ${row.id.padEnd(13)} ${sec(s.wallMs)} s` +
          (s.metadataMs !== null ? ` (metadata at ${sec(s.metadataMs)} s)` : ''),
      );
    });
    for (const s of seeders) await s.stop();
    await tracker.stop();
  } finally {
    await stopAll();
    await removeTempDir(work);
  }

  /** @param {string} id */
  const wall = (id) => median((samples[id] ?? []).map((s) => s.wallMs));
  const lines = ROWS.map((row) => {
    const xs = samples[row.id] ?? [];
    const walls = xs.map((s) => s.wallMs);
    const meta = xs.map((s) => s.metadataMs).filter((m) => m !== null);
    return (
      `| ${row.label} | ${row.source === 'magnet' ? 'magnet link' : '.torrent'} | ` +
      `${sec(wall(row.id))} | ${sec(Math.min(...walls))}–${sec(Math.max(...walls))} | ` +
      `${meta.length > 0 ? sec(median(meta)) : '–'} | ${(SIZE / MiB / (wall(row.id) / 1000)).toFixed(0)} |`
    );
  });
  const markdown = [
    `### magnet: 32 MiB from two unthrottled seeders (libtorrent and aria2c) through opentracker, magnet link against .torrent (${runs} runs each)`,
    '',
    '| client | from | wall s (median) | min–max s | metadata at s (median) | MiB/s |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...lines,
    '',
    'The magnet link holds `xt` and `tr` (the tracker) only; no DHT on any side. Wall time from ' +
      'spawn to exit; "metadata at" is when the client had the info dictionary (tdl: its ' +
      '`metadata` `done` event; libtorrent: `has_metadata`), since spawn. Clients alternate, ' +
      'every download is checked byte for byte.',
  ].join('\n');
  const tdlMagnet = wall('tdl-magnet');
  const tdlTorrent = wall('tdl-torrent');
  const ltMagnet = wall('lt-magnet');
  return {
    markdown,
    checks: [
      {
        pass: tdlMagnet <= MAX_MAGNET_OVER_TORRENT * tdlTorrent,
        text:
          `magnet: tdl from the magnet ${sec(tdlMagnet)} s <= ${MAX_MAGNET_OVER_TORRENT} × tdl ` +
          `from the .torrent ${sec(tdlTorrent)} s (${sec(MAX_MAGNET_OVER_TORRENT * tdlTorrent)} s)`,
      },
      {
        pass: tdlMagnet <= ltMagnet,
        text: `magnet: tdl from the magnet ${sec(tdlMagnet)} s <= libtorrent from the magnet ${sec(ltMagnet)} s`,
      },
    ],
  };
}
