/**
 * Pipeline scenarios, tdl alone against an in-process seeder of generated data
 * (scripts/lib/gen-seeder.mjs):
 *
 * - `stdout-256m`: 256 MiB `-o - | sha1sum` against the same download to a file, the seeder
 *   serving from memory; `cat FILE | sha1sum` alone for the pipe's floor. Targets: the pipe's
 *   throughput at least 0.9 × the file's; tdl's peak RSS under 100 MB; the digest right.
 * - `select-one`: one file from the middle of a six-file torrent (`--select 3`). Target: the
 *   bytes the seeder sent at most that file's size plus two pieces.
 *
 * `npm run bench -- --scenario stdout-256m --scenario select-one`.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { median } from './bench-common.mjs';
import { generatedData, generatedTorrent, startGeneratedSeeder } from './gen-seeder.mjs';
import { TDL_CLI, shellQuote, makeTempDir, removeTempDir, runMeasured } from './real-peers.mjs';

const MiB = 1024 * 1024;
const MAX_STDOUT_RSS = 100e6;

export const PIPELINE_SCENARIOS = ['stdout-256m', 'select-one'];

/**
 * @param {string[]} names
 * @param {number} runs
 * @param {number} timeoutMs
 * @returns {Promise<{ markdown: string, checks: { pass: boolean, text: string }[] }>}
 */
export async function runPipelineBench(names, runs, timeoutMs) {
  const parts = [];
  const checks = [];
  const env = { ...process.env };
  for (const name of names) {
    const work = await makeTempDir('tdl-bench-pipe-');
    // a cache folder of its own, so `-o -`'s working copy goes nowhere else
    env.XDG_CACHE_HOME = path.join(work, 'cache');
    try {
      if (name === 'stdout-256m') {
        const r = await stdoutScenario(work, runs, timeoutMs, env);
        parts.push(r.markdown);
        checks.push(...r.checks);
      } else if (name === 'select-one') {
        const r = await selectScenario(work, runs, timeoutMs, env);
        parts.push(r.markdown);
        checks.push(...r.checks);
      }
    } finally {
      await removeTempDir(work);
    }
  }
  return { markdown: parts.join('\n\n'), checks };
}

async function stdoutScenario(work, runs, timeoutMs, env) {
  const size = 256 * MiB;
  const data = generatedData(size, 256 * 1024);
  const { torrent, infoHash } = generatedTorrent(data, 'stdout.bin');
  const want = createHash('sha1');
  for (let i = 0; i < data.pieceCount; i++) want.update(data.piece(i));
  const digest = want.digest('hex');
  // served from memory: generating each piece per request would cost the seeder about 0.3 s of
  // CPU per run, on the same two cores as tdl and sha1sum
  const seeder = await startGeneratedSeeder(data, infoHash, { keep: true });
  const file = path.join(work, 'stdout.torrent');
  await writeFile(file, torrent);
  const base = [TDL_CLI, 'download', file, '--quiet', '--no-listen', '--no-dht'];
  base.push('--peer', `127.0.0.1:${seeder.port}`, '--timeout', String(timeoutMs / 1000));
  const rows = { file: [], pipe: [], null: [] };
  /** sha1sum's own CPU time on the same 256 MiB, read from the page cache. */
  const sums = [];
  /** `cat FILE | sha1sum`'s wall time: the pipe alone, with nothing else running. */
  const catSums = [];
  try {
    for (let run = 0; run < runs; run++) {
      for (const kind of /** @type {const} */ (['file', 'pipe', 'null'])) {
        spawnSync('sync');
        const out = path.join(work, `out-${run}.bin`);
        const cmd =
          kind === 'file'
            ? `${[process.execPath, ...base, '-o', out].map(shellQuote).join(' ')}`
            : kind === 'pipe'
              ? `${[process.execPath, ...base, '-o', '-'].map(shellQuote).join(' ')} | sha1sum`
              : `${[process.execPath, ...base, '-o', '-'].map(shellQuote).join(' ')} > /dev/null`;
        const r = await runMeasured('bash', ['-c', `set -o pipefail; ${cmd}`], {
          name: `tdl ${kind}`,
          timeoutMs,
          env,
        });
        if (r.code !== 0) throw new Error(`tdl (${kind}) exited with ${r.code}: ${r.stderrTail}`);
        if (kind === 'pipe' && !r.stdout.startsWith(digest)) {
          throw new Error(`-o - | sha1sum gave ${r.stdout.trim()}, want ${digest}`);
        }
        if (kind === 'file') {
          const got = (await stat(out)).size;
          if (got !== size) throw new Error(`tdl wrote ${got} bytes, expected ${size}`);
          const sum = await runMeasured('sha1sum', [out], { name: 'sha1sum', timeoutMs, env });
          if (!sum.stdout.startsWith(digest))
            throw new Error(`tdl wrote a wrong file: ${sum.stdout}`);
          sums.push(sum.cpuMs);
          const cat = await runMeasured(
            'bash',
            ['-c', `set -o pipefail; cat ${shellQuote(out)} | sha1sum`],
            { name: 'cat | sha1sum', timeoutMs, env },
          );
          if (!cat.stdout.startsWith(digest)) throw new Error(`cat | sha1sum gave ${cat.stdout}`);
          catSums.push(cat.wallMs);
          await removeTempDir(out).catch(() => {});
        }
        rows[kind].push(r);
        console.error(
          `stdout-256m ${kind} run ${run + 1}: ${(r.wallMs / 1000).toFixed(2)} s, ` +
            `${(r.peakRssKb / 1024).toFixed(1)} MiB`,
        );
      }
    }
  } finally {
    await seeder.close();
  }
  const wall = (k) => median(rows[k].map((r) => r.wallMs));
  const cpu = (k) => median(rows[k].map((r) => r.cpuMs));
  const rss = (k) => Math.max(...rows[k].map((r) => r.peakRssKb * 1024));
  const rate = (k) => size / MiB / (wall(k) / 1000);
  const line = (k, label) =>
    `| ${label} | ${(wall(k) / 1000).toFixed(2)} s | ${rate(k).toFixed(0)} MiB/s | ` +
    `${(cpu(k) / 1000).toFixed(2)} s | ${(rss(k) / 1e6).toFixed(1)} MB |`;
  const markdown = [
    `### stdout-256m: 256 MiB from one fast generated-data seeder, to a file and through a pipe (${runs} runs each)`,
    '',
    '| tdl download | wall (median) | rate | CPU (median) | peak RSS (max) |',
    '| --- | ---: | ---: | ---: | ---: |',
    line('file', '`-o FILE`'),
    line('pipe', '`-o - \\| sha1sum`'),
    line('null', '`-o - > /dev/null`'),
    '',
    'The CPU column counts the whole command line (sha1sum too). sha1sum alone needs ' +
      `${(median(sums) / 1000).toFixed(2)} s of CPU for these 256 MiB, and ` +
      `\`cat FILE | sha1sum\` takes ${(median(catSums) / 1000).toFixed(2)} s with nothing else ` +
      'running. Behind the pipe, the reader is the slowest stage: it shares the cores with the ' +
      'seeder and the download, and gets about its fair share of them. The `/dev/null` row is ' +
      'the cost of the stream itself.',
  ].join('\n');
  return {
    markdown,
    checks: [
      {
        pass: rate('pipe') >= 0.9 * rate('file'),
        text: `stdout-256m: -o - ${rate('pipe').toFixed(0)} MiB/s >= 0.9 × -o FILE ${rate('file').toFixed(0)} MiB/s`,
      },
      {
        pass: rss('pipe') < MAX_STDOUT_RSS,
        text: `stdout-256m: tdl peak RSS with -o - ${(rss('pipe') / 1e6).toFixed(1)} MB < ${MAX_STDOUT_RSS / 1e6} MB`,
      },
    ],
  };
}

async function selectScenario(work, runs, timeoutMs, env) {
  const pieceLength = 256 * 1024;
  // six files whose edges fall inside pieces; the third is the one selected
  const files = [5 * MiB + 1000, 7 * MiB + 3333, 16 * MiB + 77, 3 * MiB + 5, 9 * MiB, 1234567];
  const size = files.reduce((a, b) => a + b, 0);
  const data = generatedData(size, pieceLength);
  const { torrent, infoHash } = generatedTorrent(data, 'six', files);
  const file = path.join(work, 'six.torrent');
  await writeFile(file, torrent);
  const received = [];
  for (let run = 0; run < runs; run++) {
    const seeder = await startGeneratedSeeder(data, infoHash);
    const out = path.join(work, `six-${run}`);
    try {
      const argv = [TDL_CLI, 'download', file, '-o', out, '--quiet', '--no-listen', '--no-dht'];
      argv.push('--peer', `127.0.0.1:${seeder.port}`, '--select', '3');
      const r = await runMeasured(process.execPath, argv, { name: 'tdl select', timeoutMs, env });
      if (r.code !== 0) throw new Error(`tdl --select exited with ${r.code}: ${r.stderrTail}`);
      const names = (await readdir(out)).sort();
      if (names.join(',') !== 'f3.bin') throw new Error(`--select 3 created ${names.join(', ')}`);
      received.push(seeder.served());
    } finally {
      await seeder.close();
      await removeTempDir(out).catch(() => {});
    }
  }
  const worst = Math.max(...received);
  const bound = files[2] + 2 * pieceLength;
  const markdown = [
    `### select-one: --select 3 of a six-file torrent (${(size / MiB).toFixed(1)} MiB, pieces of 256 KiB; ${runs} runs)`,
    '',
    `File 3 is ${files[2]} bytes; the seeder sent ${received.join(', ')} bytes ` +
      `(at most ${(worst - files[2]).toLocaleString('en')} more than the file; the bound is two pieces, ${2 * pieceLength}).`,
  ].join('\n');
  return {
    markdown,
    checks: [
      {
        pass: worst <= bound,
        text: `select-one: bytes received ${worst} <= file ${files[2]} + two pieces (${bound})`,
      },
    ],
  };
}
