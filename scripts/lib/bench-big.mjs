/**
 * The very large torrent scenario: 8 GiB in 32,768 pieces of 256 KiB, its data generated on the
 * fly by an in-process seeder (scripts/lib/gen-seeder.mjs), downloaded by tdl to a file on disk.
 * Reports tdl's wall time, CPU and peak RSS (target: under 120 MB).
 *
 * `npm run bench -- --scenario big-8g` (`big-1g` is the same at 1 GiB, for a quick look;
 * `small-pieces` is 256 MiB in 16 KiB pieces, where what tdl spends per piece shows;
 * `files-100k` is 100,000 files of 1,000 bytes, where what tdl spends per file shows: target
 * under 200 MB).
 */
import { spawnSync } from 'node:child_process';
import { readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { generatedData, generatedTorrent, startGeneratedSeeder } from './gen-seeder.mjs';
import { makeTempDir, removeTempDir, tdlDownload } from './real-peers.mjs';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Peak RSS target of the very large torrent, in bytes. */
const MAX_RSS = 120e6;
/** Peak RSS target of the 100,000-file torrent, in bytes. */
const MAX_RSS_FILES = 200e6;
/** Files of the many-files shape. */
const MANY = 100_000;

/** Size and piece length of each scenario. */
const SHAPES = {
  'big-8g': { size: 8 * GiB, pieceLength: 256 * 1024 },
  'big-1g': { size: 1 * GiB, pieceLength: 256 * 1024 },
  /** the cost per piece: 256 MiB in 16,384 pieces of 16 KiB */
  'small-pieces': { size: 256 * MiB, pieceLength: 16 * 1024 },
  /** the cost per file: 100,000 files of 1,000 bytes (95 MiB), pieces of 256 KiB */
  'files-100k': { size: MANY * 1000, pieceLength: 256 * 1024, files: MANY },
};

export const BIG_SCENARIOS = Object.keys(SHAPES);

/**
 * @param {string[]} names
 * @param {number} runs
 * @param {number} timeoutMs
 * @returns {Promise<{ markdown: string, checks: { pass: boolean, text: string }[] }>}
 */
export async function runBigBench(names, runs, timeoutMs) {
  const lines = [];
  const checks = [];
  for (const name of names) {
    /** @type {{ size: number, pieceLength: number, files?: number }} */
    const shape = SHAPES[/** @type {keyof typeof SHAPES} */ (name)];
    const { size, pieceLength, files } = shape;
    const data = generatedData(size, pieceLength);
    const t0 = Date.now();
    const lengths = files ? new Array(files).fill(size / files) : undefined;
    const { torrent, infoHash } = generatedTorrent(data, files ? name : `${name}.bin`, lengths);
    console.error(`${name}: hashed ${data.pieceCount} pieces in ${Date.now() - t0} ms`);
    const seeder = await startGeneratedSeeder(data, infoHash);
    const work = await makeTempDir('tdl-bench-big-');
    try {
      const file = path.join(work, `${name}.torrent`);
      await writeFile(file, torrent);
      for (let run = 0; run < runs; run++) {
        spawnSync('sync');
        const out = path.join(work, files ? `${name}-${run}` : `${name}-${run}.bin`);
        const r = await tdlDownload({
          torrent: file,
          out,
          timeoutMs,
          peers: [`127.0.0.1:${seeder.port}`],
          args: ['--quiet'],
        });
        if (r.code !== 0) throw new Error(`tdl exited with ${r.code}: ${r.stderrTail}`);
        if (files) {
          // tdl checked every piece; here, that every file is there
          const got = (await readdir(out)).length;
          if (got !== files) throw new Error(`tdl wrote ${got} files, expected ${files}`);
        } else {
          const got = (await stat(out)).size;
          if (got !== size) throw new Error(`tdl wrote ${got} bytes, expected ${size}`);
        }
        const rss = r.peakRssKb * 1024;
        const line =
          `| ${name} | ${data.pieceCount} | ${(r.wallMs / 1000).toFixed(2)} | ` +
          `${(r.cpuMs / 1000).toFixed(2)} | ${(rss / 1e6).toFixed(1)} | ` +
          `${(size / MiB / (r.wallMs / 1000)).toFixed(0)} |`;
        console.error(line);
        lines.push(line);
        // RSS targets: the very large torrent's and the many files'
        const max = name.startsWith('big-') ? MAX_RSS : files ? MAX_RSS_FILES : 0;
        if (max)
          checks.push({
            pass: rss < max,
            text: `${name}: tdl peak RSS ${(rss / 1e6).toFixed(1)} MB < ${max / 1e6} MB`,
          });
        // A many-file output stays until the scenario ends: ext4 gives a new file an inode
        // other than those freed in the last half minute, checking each such one, so that the
        // 100,000 files just removed made the next run's creates cost 3-4 times the system time.
        if (!files) await removeTempDir(out).catch(() => {});
      }
    } finally {
      await seeder.close();
      await removeTempDir(work);
    }
  }
  const markdown = [
    '## Very large torrent (generated data, one in-process seeder)',
    '',
    '| scenario | pieces | wall s | CPU s | peak RSS MB | MiB/s |',
    '| --- | --- | --- | --- | --- | --- |',
    ...lines,
  ].join('\n');
  return { markdown, checks };
}
