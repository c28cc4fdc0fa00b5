/**
 * The resume scenario: a download of 3,000 files (generated data, one in-process seeder) under
 * `ulimit -n 256` is interrupted with SIGINT once about half of its bytes are in, then run again.
 * Reports the second run's start-up check (`checkMs` of its `done` event; target under 1 s), its
 * wall time, CPU and peak RSS, and what the seeder served it (at most what was missing, plus the
 * pieces in flight at the interrupt).
 *
 * `npm run bench -- --scenario resume-3000`.
 */
import { spawnSync } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { generatedData, generatedTorrent, startGeneratedSeeder } from './gen-seeder.mjs';
import {
  TDL_CLI,
  shellQuote,
  makeTempDir,
  removeTempDir,
  runMeasured,
  spawnTracked,
  stopTracked,
} from './real-peers.mjs';

export const RESUME_SCENARIOS = ['resume-3000'];

const FILES = 3_000;
/** Bytes per file: 3,000 of them make about 100 MiB, like scenario 10. */
const FILE_BYTES = 35_000;
const PIECE = 256 * 1024;
/** The open-file limit both runs get, far below the number of files. */
const NOFILE = 256;
/** The first run's download limit, so that the interrupt lands near the middle. */
const FIRST_RATE = '20M';
/** Target: the second run's start-up check. */
const MAX_CHECK_MS = 1_000;

/**
 * `tdl download` of `torrent` into `out` under `ulimit -n NOFILE`, as a bash command line.
 * @param {string} torrent
 * @param {string} out
 * @param {number} port
 * @param {string[]} extra
 */
function commandLine(torrent, out, port, extra) {
  const argv = [process.execPath, TDL_CLI, 'download', torrent, '-o', out, '--json', '--quiet'];
  argv.push('--peer', `127.0.0.1:${port}`, '--no-listen', '--no-dht', ...extra);
  return `ulimit -n ${NOFILE} && exec ${argv.map(shellQuote).join(' ')}`;
}

/**
 * @param {number} runs
 * @param {number} timeoutMs
 * @returns {Promise<{ markdown: string, checks: { pass: boolean, text: string }[] }>}
 */
export async function runResumeBench(runs, timeoutMs) {
  const size = FILES * FILE_BYTES;
  const data = generatedData(size, PIECE);
  const { torrent, infoHash } = generatedTorrent(
    data,
    'resume-3000',
    new Array(FILES).fill(FILE_BYTES),
  );
  const seeder = await startGeneratedSeeder(data, infoHash);
  const work = await makeTempDir('tdl-bench-resume-');
  const lines = [];
  const checks = [];
  try {
    const file = path.join(work, 'resume-3000.torrent');
    await writeFile(file, torrent);
    for (let run = 0; run < runs; run++) {
      spawnSync('sync');
      const out = path.join(work, `out-${run}`);
      const before = seeder.served();
      // First run: stopped with SIGINT (Ctrl-C) once half the bytes are in.
      let half = /** @type {() => void} */ (() => {});
      const halfway = new Promise((resolve) => {
        half = () => resolve(undefined);
      });
      const first = spawnTracked(
        'tdl (first run)',
        'bash',
        ['-c', commandLine(file, out, seeder.port, ['--max-download-rate', FIRST_RATE])],
        {
          stopSignal: 'SIGINT',
          onStdoutLine: (line) => {
            if (!line.startsWith('{')) return;
            const ev = JSON.parse(line);
            if (ev.event === 'progress' && ev.downloaded >= size / 2) half();
          },
        },
      );
      /** @type {NodeJS.Timeout | undefined} */
      let timer;
      const reached = await Promise.race([
        halfway.then(() => true),
        first.exited.then(() => false),
        new Promise((r) => {
          timer = setTimeout(() => r(false), timeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
      await stopTracked(first, 30_000);
      if (!reached) throw new Error(`the first run ended before half: ${first.stderrTail()}`);
      if (first.exit?.code !== 130)
        throw new Error(`the first run exited with ${first.exit?.code}: ${first.stderrTail()}`);
      const servedFirst = seeder.served() - before;
      spawnSync('sync');
      // Second run: what the start-up check takes, and what is fetched again.
      const r = await runMeasured('bash', ['-c', commandLine(file, out, seeder.port, [])], {
        name: 'tdl (resumed)',
        timeoutMs,
      });
      if (r.code !== 0) throw new Error(`the resumed run exited with ${r.code}: ${r.stderrTail}`);
      const served = seeder.served() - before - servedFirst;
      const done = r.stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l))
        .find((e) => e.event === 'done');
      if (!done) throw new Error('the resumed run gave no done event');
      const got = (await readdir(out)).length;
      if (got !== FILES) throw new Error(`tdl wrote ${got} files, expected ${FILES}`);
      const line =
        `| ${run + 1} | ${mib(servedFirst)} | ${mib(done.present)} | ${done.checkMs} | ` +
        `${mib(served)} | ${(r.wallMs / 1000).toFixed(2)} | ${(r.cpuMs / 1000).toFixed(2)} | ` +
        `${((r.peakRssKb * 1024) / 1e6).toFixed(1)} |`;
      console.error(line);
      lines.push(line);
      checks.push({
        pass: done.checkMs < MAX_CHECK_MS,
        text: `resume-3000: start-up check ${done.checkMs} ms < ${MAX_CHECK_MS} ms`,
      });
      // Fetched again: only what was missing, give or take the pieces in flight at the stop.
      const missing = size - done.present;
      checks.push({
        pass: served <= missing + 8 * PIECE,
        text: `resume-3000: served on resume ${served} B <= missing ${missing} B + 8 pieces`,
      });
      await removeTempDir(out).catch(() => {});
    }
  } finally {
    await seeder.close();
    await removeTempDir(work);
  }
  const markdown = [
    `### resume-3000: ${FILES} files of ${FILE_BYTES} B (${mib(size)} MiB, pieces of 256 KiB) ` +
      `under \`ulimit -n ${NOFILE}\`, Ctrl-C at half, then run again`,
    '',
    '| run | first run got MiB | present at resume MiB | start-up check ms | fetched again MiB | ' +
      'wall s | CPU s | peak RSS MB |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...lines,
  ].join('\n');
  return { markdown, checks };
}

/** @param {number} n */
function mib(n) {
  return (n / (1024 * 1024)).toFixed(1);
}
