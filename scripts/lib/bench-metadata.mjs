// @ts-check
/**
 * Metadata scenarios of `npm run bench`: no swarm, one command at a time.
 *
 * - create-1g:   `tdl create` on a 1 GiB file with 256 KiB pieces, against mktorrent (2 threads)
 *                and libtorrent's create_torrent (v1), same input, page cache warm.
 * - create-3000: the same on a folder of 3,000 small files (1–64 KiB).
 * - info-100k:   `tdl info` on a 100,000-file torrent.
 *
 * Targets: tdl create's wall time at most mktorrent's and its peak RSS below 100 MB; tdl info
 * under 0.5 s and 100 MB.
 */
import { createHash, randomFillSync } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import bencode from 'bencode';
import { median } from './bench-common.mjs';
import {
  PYTHON,
  TDL_CLI,
  findExecutable,
  makePayload,
  makeTempDir,
  removeTempDir,
  runMeasured,
  shellQuote,
} from './real-peers.mjs';

export const METADATA_SCENARIOS = ['create-1g', 'create-3000', 'info-100k'];

const KiB = 1024;
const MiB = 1024 * KiB;
const MAX_RSS_BYTES = 100 * 1000 * 1000;
const INFO_MAX_MS = 500;

const LT_CREATE = `
import sys, libtorrent as lt
fs = lt.file_storage()
lt.add_files(fs, sys.argv[1])
ct = lt.create_torrent(fs, int(sys.argv[3]), flags=lt.create_torrent.v1_only)
lt.set_piece_hashes(ct, sys.argv[4])
open(sys.argv[2], 'wb').write(lt.bencode(ct.generate()))
`;

/** Reads every file under `root` once, so every tool starts with a warm page cache. */
async function warm(root) {
  const st = await fs.stat(root);
  if (st.isFile()) {
    const fh = await fs.open(root);
    const b = Buffer.allocUnsafe(4 * MiB);
    try {
      while ((await fh.read(b, 0, b.length)).bytesRead > 0);
    } finally {
      await fh.close();
    }
    return;
  }
  for (const e of await fs.readdir(root)) await warm(path.join(root, e));
}

/**
 * @param {string} dir
 * @param {string} source
 * @param {number} pieceLength
 * @param {number} runs
 */
async function benchCreate(dir, source, pieceLength, runs) {
  const mk = findExecutable('mktorrent');
  const tools = [
    {
      name: 'tdl',
      cmd: process.execPath,
      args: (/** @type {string} */ out) => [
        TDL_CLI,
        'create',
        source,
        '-o',
        out,
        '--piece-length',
        String(pieceLength),
        '--no-date',
        '-q',
      ],
    },
    ...(mk
      ? [
          {
            name: 'mktorrent -t 2',
            cmd: mk,
            args: (/** @type {string} */ out) => [
              '-t',
              '2',
              '-l',
              String(Math.log2(pieceLength)),
              '-o',
              out,
              source,
            ],
          },
        ]
      : []),
    {
      name: 'libtorrent',
      cmd: PYTHON,
      args: (/** @type {string} */ out) => [
        '-c',
        LT_CREATE,
        source,
        out,
        String(pieceLength),
        path.dirname(source),
      ],
    },
  ];
  await warm(source);
  /** @type {Record<string, { wallMs: number, peakRssKb: number }[]>} */
  const byTool = {};
  for (let run = 0; run < runs; run++) {
    for (const t of tools) {
      const out = path.join(dir, `out-${run}.torrent`);
      await fs.rm(out, { force: true });
      const r = await runMeasured(t.cmd, t.args(out), { name: t.name });
      if (r.code !== 0) throw new Error(`${t.name} failed: ${r.stderrTail}`);
      (byTool[t.name] ??= []).push(r);
      console.error(
        `  run ${run + 1}/${runs} ${t.name.padEnd(15)} wall ${(r.wallMs / 1000).toFixed(2)} s, ` +
          `peak RSS ${((r.peakRssKb * KiB) / 1e6).toFixed(1)} MB`,
      );
      await fs.rm(out, { force: true });
    }
  }
  return Object.entries(byTool).map(([name, rs]) => ({
    name,
    wallMs: median(rs.map((r) => r.wallMs)),
    rssBytes: median(rs.map((r) => r.peakRssKb * KiB)),
  }));
}

/** A .torrent of 100,000 files in three-level paths, written to `file`. */
async function hundredThousandFiles(file) {
  const files = [];
  let total = 0;
  for (let i = 0; i < 100_000; i++) {
    const length = 1000 + (i % 5000);
    files.push({ length, path: [`dir${i % 300}`, `sub${i % 7}`, `file-${i}.dat`] });
    total += length;
  }
  const pl = 4 * MiB;
  const pieces = Buffer.alloc(20 * Math.ceil(total / pl));
  const info = { name: 'big', 'piece length': pl, pieces, files };
  await fs.writeFile(file, bencode.encode({ announce: 'http://127.0.0.1:1/announce', info }));
  return createHash('sha1').update(bencode.encode(info)).digest('hex');
}

/**
 * Runs the named metadata scenarios; returns their markdown and target checks.
 * @param {string[]} names
 * @param {number} runs
 */
export async function runMetadataBench(names, runs) {
  const dir = await makeTempDir('tdl-bench-meta-');
  /** @type {string[]} */
  const md = [];
  /** @type {{ pass: boolean, text: string }[]} */
  const checks = [];
  const table = (/** @type {{ name: string, wallMs: number, rssBytes: number }[]} */ rows) =>
    [
      '| tool | wall time (median) | peak RSS |',
      '| --- | ---: | ---: |',
      ...rows.map(
        (r) =>
          `| ${r.name} | ${(r.wallMs / 1000).toFixed(2)} s | ${(r.rssBytes / 1e6).toFixed(1)} MB |`,
      ),
    ].join('\n');
  const createChecks = (/** @type {string} */ id, /** @type {any[]} */ rows) => {
    const tdl = rows.find((r) => r.name === 'tdl');
    const mk = rows.find((r) => r.name.startsWith('mktorrent'));
    if (mk) {
      checks.push({
        pass: tdl.wallMs <= mk.wallMs,
        text: `${id}: tdl wall time ${(tdl.wallMs / 1000).toFixed(2)} s <= mktorrent's ${(mk.wallMs / 1000).toFixed(2)} s`,
      });
    }
    checks.push({
      pass: tdl.rssBytes < MAX_RSS_BYTES,
      text: `${id}: tdl peak RSS ${(tdl.rssBytes / 1e6).toFixed(1)} MB < 100 MB`,
    });
  };
  try {
    if (names.includes('create-1g')) {
      console.error('scenario create-1g: tdl create on a 1 GiB file, 256 KiB pieces');
      const src = await makePayload(dir, { name: 'one-gib.bin', size: 1024 * MiB });
      const rows = await benchCreate(dir, src, 256 * KiB, runs);
      md.push(`### create-1g: one 1 GiB file, 256 KiB pieces (${runs} runs)\n\n${table(rows)}`);
      createChecks('create-1g', rows);
      await fs.rm(src, { force: true });
    }
    if (names.includes('create-3000')) {
      console.error('scenario create-3000: tdl create on a folder of 3,000 small files');
      const root = path.join(dir, 'small-files');
      const b = Buffer.allocUnsafe(64 * KiB);
      let total = 0;
      for (let i = 0; i < 3000; i++) {
        const size = 1 * KiB + ((i * 7919) % (63 * KiB));
        const sub = path.join(root, `d${i % 30}`);
        await fs.mkdir(sub, { recursive: true });
        randomFillSync(b, 0, size);
        await fs.writeFile(path.join(sub, `f${i}.bin`), b.subarray(0, size));
        total += size;
      }
      const rows = await benchCreate(dir, root, 256 * KiB, runs);
      md.push(
        `### create-3000: a folder of 3,000 files of 1–64 KiB (${(total / MiB).toFixed(0)} MiB), ` +
          `256 KiB pieces (${runs} runs)\n\n${table(rows)}`,
      );
      createChecks('create-3000', rows);
    }
    if (names.includes('info-100k')) {
      console.error('scenario info-100k: tdl info on a 100,000-file torrent');
      const file = path.join(dir, 'hundred-thousand.torrent');
      await hundredThousandFiles(file);
      const size = (await fs.stat(file)).size;
      /** @type {{ wallMs: number, peakRssKb: number }[]} */
      const rs = [];
      // The listing goes to a file, as `tdl info x.torrent > list.txt` would: through a pipe into
      // this process it waited on this process splitting 100,000 lines on the same two cores.
      const listing = path.join(dir, 'listing.txt');
      const command = `exec ${[process.execPath, TDL_CLI, 'info', file].map(shellQuote).join(' ')} > ${shellQuote(listing)}`;
      for (let run = 0; run < runs; run++) {
        const r = await runMeasured('bash', ['-c', command], { name: 'tdl' });
        if (r.code !== 0) throw new Error(`tdl info failed: ${r.stderrTail}`);
        const text = await fs.readFile(listing, 'utf8');
        const listed = text.split('\n').filter((l) => /^ +\d+ /.test(l)).length;
        if (listed !== 100_000) throw new Error(`tdl info listed ${listed} files, not 100,000`);
        rs.push(r);
        console.error(
          `  run ${run + 1}/${runs} wall ${(r.wallMs / 1000).toFixed(2)} s, ` +
            `peak RSS ${((r.peakRssKb * KiB) / 1e6).toFixed(1)} MB`,
        );
      }
      const row = {
        name: 'tdl info',
        wallMs: median(rs.map((r) => r.wallMs)),
        rssBytes: median(rs.map((r) => r.peakRssKb * KiB)),
      };
      md.push(
        `### info-100k: tdl info on a 100,000-file torrent (${(size / 1e6).toFixed(1)} MB, ` +
          `${runs} runs)\n\n${table([row])}`,
      );
      checks.push({
        pass: row.wallMs < INFO_MAX_MS,
        text: `info-100k: tdl info ${(row.wallMs / 1000).toFixed(2)} s < ${INFO_MAX_MS / 1000} s`,
      });
      checks.push({
        pass: row.rssBytes < MAX_RSS_BYTES,
        text: `info-100k: tdl info peak RSS ${(row.rssBytes / 1e6).toFixed(1)} MB < 100 MB`,
      });
    }
  } finally {
    await removeTempDir(dir);
  }
  return { markdown: md.join('\n\n'), checks };
}

/**
 * The measured part of the metadata block in docs/BENCHMARKS.md, or '' when there is none.
 * @param {string} docPath
 */
export async function readMetadataBlock(docPath) {
  const old = await fs.readFile(docPath, 'utf8').catch(() => '');
  const m =
    /<!-- metadata start -->\n\n## Making and reading torrents\n\n([\s\S]*?)\n\n<!-- metadata end -->/.exec(
      old,
    );
  return m ? m[1] : '';
}

/**
 * With --write-doc: puts `markdown` between the metadata markers of docs/BENCHMARKS.md (kept
 * by the swarm scenarios' rewrite, which does not know this block), or appends it.
 * @param {string} docPath
 * @param {string} block
 */
export async function writeMetadataDoc(docPath, block) {
  const start = '<!-- metadata start -->';
  const end = '<!-- metadata end -->';
  const old = await fs.readFile(docPath, 'utf8').catch(() => '');
  const text = `${start}\n\n## Making and reading torrents\n\n${block}\n\n${end}`;
  const i = old.indexOf(start);
  const j = old.indexOf(end);
  const next =
    i >= 0 && j > i
      ? old.slice(0, i) + text + old.slice(j + end.length)
      : `${old.trimEnd()}\n\n${text}\n`;
  await fs.writeFile(docPath, next);
}
