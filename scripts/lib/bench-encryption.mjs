// @ts-check
/**
 * The encryption scenario: 128 MiB from one unthrottled libtorrent seeder through opentracker,
 * once from a seeder that requires encryption (RC4 only) and once from a plain one, by tdl with
 * its default `--encryption allow` (it is hung up on, then dials again with MSE) and by
 * libtorrent's downloader (encryption forced against the first seeder, its defaults against the
 * second). What RC4 costs each client, and what tdl's second dial costs.
 *
 * No target: a measure. `npm run bench -- --scenario encryption --runs 3`.
 */
import path from 'node:path';
import {
  assertTdlOk,
  createTorrent,
  libtorrentDownload,
  makePayload,
  makeTempDir,
  removeTempDir,
  startLibtorrentSeeder,
  startOpentracker,
  stopAll,
  tdlDownload,
  waitForSeeders,
} from './real-peers.mjs';
import { assertSameTree, median, requirePrograms, rotatedRuns, sec } from './bench-common.mjs';

export const ENCRYPTION_SCENARIOS = ['encryption'];

const MiB = 1024 * 1024;
const SIZE = 128 * MiB;
const PIECE_LENGTH = 256 * 1024;

/**
 * @typedef {{ wallMs: number, cpuMs: number }} Sample
 * @typedef {{ id: string, client: string, seeder: 'rc4' | 'plain',
 *   run: (torrent: string, out: string, timeoutMs: number) => Promise<Sample> }} Row
 */

/** @type {Row[]} */
const ROWS = [
  .../** @type {const} */ (['rc4', 'plain']).flatMap((seeder) => [
    {
      id: `tdl-${seeder}`,
      client: 'tdl',
      seeder,
      /** @type {Row['run']} */
      run: async (torrent, out, timeoutMs) => {
        const r = await tdlDownload({ torrent, out, timeoutMs, args: ['--quiet', '--no-dht'] });
        assertTdlOk(r);
        return { wallMs: r.wallMs, cpuMs: r.cpuMs };
      },
    },
    {
      id: `lt-${seeder}`,
      client: 'libtorrent',
      seeder,
      /** @type {Row['run']} */
      run: async (torrent, out, timeoutMs) => {
        const r = await libtorrentDownload({
          torrent,
          outDir: out,
          timeoutMs,
          requireEncryption: seeder === 'rc4',
        });
        return { wallMs: r.wallMs, cpuMs: r.cpuMs };
      },
    },
  ]),
];

/**
 * @param {string[]} names
 * @param {number} runs
 * @param {number} timeoutMs
 * @returns {Promise<{ markdown: string, checks: { pass: boolean, text: string }[] }>}
 */
export async function runEncryptionBench(names, runs, timeoutMs) {
  if (!names.includes('encryption')) return { markdown: '', checks: [] };
  requirePrograms(['opentracker', 'libtorrent']);
  console.error('scenario encryption: 128 MiB from a libtorrent seeder, RC4 required or plain');
  const work = await makeTempDir('tdl-bench-encryption-');
  /** @type {Record<string, Sample[]>} */
  const samples = Object.fromEntries(ROWS.map((r) => [r.id, []]));
  try {
    const dataDir = path.join(work, 'data');
    const tracker = await startOpentracker();
    /** @type {Record<'rc4' | 'plain', { torrent: string, root: string, name: string }>} */
    const swarms = /** @type {any} */ ({});
    for (const seeder of /** @type {const} */ (['rc4', 'plain'])) {
      const name = `bench-encryption-${seeder}.bin`;
      const root = await makePayload(dataDir, { name, size: SIZE });
      const t = await createTorrent({
        source: root,
        out: path.join(work, `${name}.torrent`),
        pieceLength: PIECE_LENGTH,
        trackers: [[tracker.httpUrl]],
      });
      await tracker.addInfoHash(t.infoHashHex);
      await startLibtorrentSeeder({
        torrent: t.path,
        dataDir,
        requireEncryption: seeder === 'rc4',
      });
      await waitForSeeders(tracker.httpUrl, t.infoHashHex, 1);
      swarms[seeder] = { torrent: t.path, root, name };
    }
    await rotatedRuns(ROWS, runs, 'tdl-bench-encryption-out-', async (row, out, run) => {
      const swarm = swarms[row.seeder];
      const s = await row.run(swarm.torrent, out, timeoutMs);
      await assertSameTree(row.id, swarm.root, path.join(out, swarm.name));
      samples[row.id]?.push(s);
      console.error(
        `  run ${run + 1}/${runs} ${row.id.padEnd(9)} ${sec(s.wallMs)} s, CPU ${sec(s.cpuMs)} s`,
      );
    });
    await tracker.stop();
  } finally {
    await stopAll();
    await removeTempDir(work);
  }

  const lines = ROWS.map((row) => {
    const xs = samples[row.id] ?? [];
    const wall = median(xs.map((s) => s.wallMs));
    const walls = xs.map((s) => s.wallMs);
    return (
      `| ${row.client} | ${row.seeder === 'rc4' ? 'requires encryption (RC4)' : 'plain'} | ` +
      `${sec(wall)} | ${sec(Math.min(...walls))}–${sec(Math.max(...walls))} | ` +
      `${sec(median(xs.map((s) => s.cpuMs)))} | ${(SIZE / MiB / (wall / 1000)).toFixed(0)} |`
    );
  });
  const markdown = [
    `### encryption: 128 MiB from one libtorrent seeder through opentracker, RC4 required or plain (${runs} runs each)`,
    '',
    '| client | seeder | wall s (median) | min–max s | CPU s (median) | MiB/s |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...lines,
    '',
    'tdl runs with its default `--encryption allow`: the seeder that requires encryption hangs up ' +
      'on its plain handshake and it dials again with MSE, and gets RC4. libtorrent downloads ' +
      'with encryption forced from that seeder and with its defaults from the plain one. Clients ' +
      'alternate; every download is checked byte for byte. No target: a measure of what RC4 costs.',
  ].join('\n');
  return { markdown, checks: [] };
}
