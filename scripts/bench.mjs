#!/usr/bin/env node
// @ts-check
/**
 * Benchmark: tdl against aria2c and libtorrent's own downloader, in a loopback swarm of real
 * programs (opentracker and seeders from python3-libtorrent and aria2c).
 *
 *   npm run bench -- [--runs N] [--scenario N]... [--only tdl,aria2,libtorrent] [--write-doc]
 *                    [--no-svg] [--timeout SECONDS]
 *
 * Prints a markdown table per scenario (medians of N runs, clients alternating), checks the
 * targets, writes docs/bench-throughput.svg and, with --write-doc, docs/BENCHMARKS.md.
 */

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  PYTHON,
  REPO_ROOT,
  TDL_CLI,
  announce,
  aria2Download,
  assertTdlOk,
  compareTrees,
  createTorrent,
  findExecutable,
  libtorrentDownload,
  libtorrentLeech,
  makePayload,
  makeTempDir,
  missingPrograms,
  removeTempDir,
  startAria2Seeder,
  startHangingPeers,
  startLibtorrentSeeder,
  startOpentracker,
  startTdlPeer,
  startTransmissionSeeder,
  stopAll,
  tdlDownload,
  waitForSeeders,
} from './lib/real-peers.mjs';
import {
  METADATA_SCENARIOS,
  readMetadataBlock,
  runMetadataBench,
  writeMetadataDoc,
} from './lib/bench-metadata.mjs';
import { BIG_SCENARIOS, runBigBench } from './lib/bench-big.mjs';
import { PIPELINE_SCENARIOS, runPipelineBench } from './lib/bench-pipeline.mjs';
import { RESUME_SCENARIOS, runResumeBench } from './lib/bench-resume.mjs';
import { MAGNET_SCENARIOS, runMagnetBench } from './lib/bench-magnet.mjs';
import { ENCRYPTION_SCENARIOS, runEncryptionBench } from './lib/bench-encryption.mjs';
import { DHT_SCENARIOS, runDhtBench } from './lib/bench-dht.mjs';
import { median } from './lib/bench-common.mjs';

const MiB = 1024 * 1024;
const KiB = 1024;
/** Seeder cap of scenario 2, per seeder. */
const SEEDER_CAP = 4 * MiB;
/** Target limits. */
const TARGETS = {
  /** scenario 1: tdl's wall time at most this fraction of aria2c's */
  vsAria2: 0.7,
  /** tdl's peak RSS below this many bytes (100 MB) */
  maxRssBytes: 100 * 1000 * 1000,
  /** scenario 2: tdl's rate at least this fraction of what the seeders allow together */
  capFraction: 0.9,
  /** scenario 10 (many small files): tdl's wall and CPU at most these multiples of libtorrent's */
  manyWallVsLt: 1.5,
  manyCpuVsLt: 2,
  /** scenario 10: tdl's peak RSS below this many bytes (120 MB) */
  manyMaxRssBytes: 120 * 1000 * 1000,
};

const CLIENTS = /** @type {const} */ (['tdl', 'aria2', 'libtorrent']);
/** @typedef {typeof CLIENTS[number]} Client */
/** @type {Record<Client, string>} */
const CLIENT_LABEL = { tdl: 'tdl', aria2: 'aria2c', libtorrent: 'libtorrent' };
/** @type {Record<Client, string>} */
const CLIENT_COLOR = { tdl: '#d62728', aria2: '#1f77b4', libtorrent: '#2ca02c' };

/**
 * @typedef {{ kind: 'libtorrent' | 'aria2', rateLimit?: number }} SeederSpec
 * @typedef {{ id: number, title: string, payload: import('./lib/real-peers.mjs').PayloadSpec,
 *   size: number, pieceLength: number, seeders: SeederSpec[], cap?: number, chart: boolean,
 *   optIn?: boolean }} Scenario
 */

/** About 100 MiB in 7 files of odd sizes (none a multiple of the piece length). */
const MULTI_FILES = [
  { path: ['disc1', 'track01.flac'], size: 23_456_789 },
  { path: ['disc1', 'track02.flac'], size: 17_777_777 },
  { path: ['disc1', 'cover.jpg'], size: 345_679 },
  { path: ['disc2', 'track01.flac'], size: 31_234_567 },
  { path: ['disc2', 'track02.flac'], size: 19_999_999 },
  { path: ['notes.txt'], size: 4_321 },
  { path: ['video.mkv'], size: 12_121_213 },
];

/**
 * About 100 MiB in 3,000 small files (20 to 48 KiB, odd sizes) in nested folders: the cost of
 * many files (opens, syncs, renames) rather than of bytes.
 */
const MANY_FILES = Array.from({ length: 3000 }, (_, i) => ({
  path: [`dir${i % 10}`, `sub${Math.floor(i / 10) % 15}`, `file${String(i).padStart(4, '0')}.dat`],
  size: 20_000 + ((i * 7919) % 29_000),
}));

/**
 * @param {string} seederKinds2 'mixed' (two libtorrent + two aria2c) or 'libtorrent' (four)
 * @returns {Scenario[]}
 */
function scenarios(seederKinds2) {
  const capped = /** @type {SeederSpec[]} */ (
    seederKinds2 === 'libtorrent'
      ? [1, 2, 3, 4].map(() => ({ kind: 'libtorrent', rateLimit: SEEDER_CAP }))
      : [
          { kind: 'libtorrent', rateLimit: SEEDER_CAP },
          { kind: 'libtorrent', rateLimit: SEEDER_CAP },
          { kind: 'aria2', rateLimit: SEEDER_CAP },
          { kind: 'aria2', rateLimit: SEEDER_CAP },
        ]
  );
  return [
    {
      id: 1,
      title: 'One unthrottled libtorrent seeder, one 256 MiB file',
      payload: { name: 'bench-256MiB.bin', size: 256 * MiB },
      size: 256 * MiB,
      pieceLength: 256 * KiB,
      seeders: [{ kind: 'libtorrent' }],
      chart: true,
    },
    {
      id: 2,
      title:
        seederKinds2 === 'libtorrent'
          ? 'Four libtorrent seeders capped at 4 MiB/s each, one 64 MiB file'
          : 'Four seeders capped at 4 MiB/s each (two libtorrent, two aria2c), one 64 MiB file',
      payload: { name: 'bench-64MiB.bin', size: 64 * MiB },
      size: 64 * MiB,
      pieceLength: 256 * KiB,
      seeders: capped,
      cap: capped.reduce((sum, s) => sum + (s.rateLimit ?? 0), 0),
      chart: true,
    },
    {
      id: 3,
      title:
        'Multi-file torrent of about 100 MiB (7 files, pieces cross file boundaries), ' +
        'two unthrottled seeders (libtorrent and aria2c)',
      payload: { name: 'bench-multi', files: MULTI_FILES },
      size: MULTI_FILES.reduce((sum, f) => sum + f.size, 0),
      pieceLength: 256 * KiB,
      seeders: [{ kind: 'libtorrent' }, { kind: 'aria2' }],
      chart: false,
    },
    {
      id: 10,
      title:
        'Many small files: about 100 MiB in 3,000 files in nested folders, ' +
        'two unthrottled libtorrent seeders (only run when named: --scenario 10)',
      payload: { name: 'bench-many', files: MANY_FILES },
      size: MANY_FILES.reduce((sum, f) => sum + f.size, 0),
      pieceLength: 256 * KiB,
      seeders: [{ kind: 'libtorrent' }, { kind: 'libtorrent' }],
      chart: false,
      optIn: true,
    },
  ];
}

/**
 * @typedef {{ wallMs: number, cpuMs: number, peakRssKb: number, series: { t: number, bytes: number }[] }} RunResult
 * @typedef {{ scenario: Scenario, runs: Record<string, RunResult[]>, clients: Client[] }} ScenarioResult
 */

function usage() {
  return `usage: node scripts/bench.mjs [--runs N] [--scenario N]... [--only tdl,aria2,libtorrent]
                          [--seeders2 libtorrent|mixed] [--timeout SECONDS] [--write-doc] [--no-svg]
                          [--keep-env]

  --scenario create-1g | create-3000 | info-100k
                         tdl create on 1 GiB / on 3,000 small files (against mktorrent and
                         libtorrent), tdl info on a 100,000-file torrent: no swarm needed (run
                         by default too)
  --scenario big-8g | big-1g | small-pieces | files-100k
                         tdl alone downloads 8 GiB (1 GiB) in 256 KiB pieces, 256 MiB in
                         16 KiB pieces, or 100,000 files of 1,000 bytes, from an in-process
                         seeder of generated data: wall, CPU, peak RSS (target < 120 MB; 200 MB
                         for files-100k)
  --scenario encryption  128 MiB from a libtorrent seeder that requires encryption and from a
                         plain one, by tdl and by libtorrent: what RC4 costs each
  --scenario resume-3000 tdl alone: 3,000 files under ulimit -n 256 from an in-process seeder,
                         Ctrl-C at half, then again: the start-up check (target < 1 s) and
                         what is fetched again (what was missing)
  --scenario stdout-256m | select-one
                         tdl alone: 256 MiB -o - | sha1sum against -o FILE (throughput >= 0.9x,
                         RSS < 100 MB); --select of one file of six (bytes received <= the
                         file + two pieces)
  --scenario magnet      32 MiB from a libtorrent and an aria2c seeder: tdl and libtorrent from a
                         magnet link and from the .torrent, aria2c from the magnet (targets: tdl
                         magnet <= 1.1x tdl .torrent, <= libtorrent magnet)
  --scenario dht         tdl finds a tdl seeder through a loopback network of 24 bittorrent-dht
                         nodes (trackerless .torrent, magnet without tr) against a tracker:
                         time to first DHT peer (target <= 2 s), total (<= tracker + 1 s)
  --seeders2 libtorrent  scenario 2 with four capped libtorrent seeders (default)
  --seeders2 mixed       two capped libtorrent and two capped aria2c seeders (aria2c's cap lets
                         bursts far above it through, so results vary more)
  --keep-env             run every program with NODE_EXTRA_CA_CERTS as set (by default it is
                         removed: Node then parses that file at every start, before any script)`;
}

async function main() {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      scenario: { type: 'string', multiple: true },
      only: { type: 'string' },
      seeders2: { type: 'string', default: 'libtorrent' },
      timeout: { type: 'string', default: '300' },
      'write-doc': { type: 'boolean', default: false },
      'no-svg': { type: 'boolean', default: false },
      'keep-env': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(usage());
    return;
  }
  const runs = Number(values.runs);
  const timeoutMs = Number(values.timeout) * 1000;
  if (!Number.isInteger(runs) || runs < 1)
    throw new Error(`--runs must be a positive integer\n${usage()}`);
  if (!(timeoutMs > 0)) throw new Error(`--timeout must be a positive number\n${usage()}`);
  if (values.seeders2 !== 'mixed' && values.seeders2 !== 'libtorrent') {
    throw new Error(`--seeders2 must be mixed or libtorrent\n${usage()}`);
  }
  const clients = /** @type {Client[]} */ (
    values.only
      ? values.only.split(',').map((c) => {
          const name = c.trim() === 'aria2c' ? 'aria2' : c.trim();
          if (!CLIENTS.includes(/** @type {Client} */ (name))) {
            throw new Error(`--only: unknown client ${c} (tdl, aria2, libtorrent)`);
          }
          return name;
        })
      : [...CLIENTS]
  );
  const all = scenarios(values.seeders2);
  // Metadata scenarios (tdl create, tdl info) need no swarm: see scripts/lib/bench-metadata.mjs.
  const metaPicked = values.scenario
    ? values.scenario.filter((s) => METADATA_SCENARIOS.includes(s))
    : METADATA_SCENARIOS;
  // Scenarios 4-9 and 11 run only when named (`--scenario 4`): each sets up swarms of its own.
  const customPicked = (values.scenario ?? [])
    .map((s) => CUSTOM.find((x) => x.id === Number(s)))
    .filter((x) => x !== undefined);
  // Very large generated torrents (tdl alone): see scripts/lib/bench-big.mjs. Only when named.
  const bigPicked = (values.scenario ?? []).filter((s) => BIG_SCENARIOS.includes(s));
  const pipePicked = (values.scenario ?? []).filter((s) => PIPELINE_SCENARIOS.includes(s));
  const resumePicked = (values.scenario ?? []).filter((s) => RESUME_SCENARIOS.includes(s));
  const magnetPicked = (values.scenario ?? []).filter((s) => MAGNET_SCENARIOS.includes(s));
  const dhtPicked = (values.scenario ?? []).filter((s) => DHT_SCENARIOS.includes(s));
  const encPicked = (values.scenario ?? []).filter((s) => ENCRYPTION_SCENARIOS.includes(s));
  const own = [
    ...METADATA_SCENARIOS,
    ...BIG_SCENARIOS,
    ...PIPELINE_SCENARIOS,
    ...RESUME_SCENARIOS,
    ...MAGNET_SCENARIOS,
    ...DHT_SCENARIOS,
    ...ENCRYPTION_SCENARIOS,
  ];
  const picked = values.scenario
    ? values.scenario
        .filter((s) => !own.includes(s))
        .filter((s) => !CUSTOM.some((x) => x.id === Number(s)))
        .map((s) => {
          const sc = all.find((x) => x.id === Number(s));
          if (!sc) {
            throw new Error(`--scenario: no scenario ${s} (1 to 11, ${own.join(', ')})`);
          }
          return sc;
        })
    : all.filter((sc) => !sc.optIn);

  const needed = ['opentracker', 'libtorrent', ...customPicked.flatMap((c) => c.programs)];
  if (clients.includes('aria2') || picked.some((s) => s.seeders.some((x) => x.kind === 'aria2'))) {
    needed.push('aria2c');
  }
  const missing =
    picked.length > 0 || customPicked.length > 0 ? missingPrograms([...new Set(needed)]) : [];
  if (missing.length > 0) {
    throw new Error(
      `missing ${missing.map((m) => m.name).join(', ')}: apt-get install -y ` +
        missing.map((m) => m.pkg).join(' '),
    );
  }
  if (clients.includes('tdl') && !existsSync(TDL_CLI)) {
    throw new Error(`${TDL_CLI} is missing: run npm run build (or pass --only aria2,libtorrent)`);
  }

  const extraCa = process.env['NODE_EXTRA_CA_CERTS'];
  // Node loads NODE_EXTRA_CA_CERTS (and with it every bundled root certificate) at start, before
  // any script: a machine-wide setting that costs each Node process tens of milliseconds and no
  // other client anything. The bench measures tdl, not that setting; --keep-env measures both.
  if (extraCa && !values['keep-env']) delete process.env['NODE_EXTRA_CA_CERTS'];
  const machine = machineInfo(extraCa, Boolean(values['keep-env']));
  console.log(`# tdl benchmark\n\n${machine.markdown}\n`);

  /** @type {ScenarioResult[]} */
  const results = [];
  /** @type {CustomResult[]} */
  const customResults = [];
  try {
    for (const sc of picked) {
      const r = await runScenario(sc, clients, runs, timeoutMs);
      results.push(r);
      console.log(`\n${scenarioMarkdown(r, machine)}\n`);
    }
    for (const sc of customPicked) {
      log(`scenario ${sc.id}: ${sc.title}`);
      const r = await sc.run({ runs, timeoutMs, clients, machine });
      await stopAll();
      customResults.push(r);
      console.log(`\n${r.markdown}\n`);
    }
  } finally {
    await stopAll();
  }

  const checks = [...targetChecks(results), ...customResults.flatMap((r) => r.checks)];
  let metaMarkdown = '';
  if (metaPicked.length > 0) {
    const meta = await runMetadataBench(metaPicked, runs);
    metaMarkdown = meta.markdown;
    console.log(`\n${metaMarkdown}\n`);
    checks.push(...meta.checks);
  }
  if (bigPicked.length > 0) {
    const big = await runBigBench(bigPicked, runs, timeoutMs);
    console.log(`\n${big.markdown}\n`);
    checks.push(...big.checks);
  }
  if (pipePicked.length > 0) {
    const pipe = await runPipelineBench(pipePicked, runs, timeoutMs);
    console.log(`\n${pipe.markdown}\n`);
    checks.push(...pipe.checks);
  }
  if (resumePicked.length > 0) {
    const res = await runResumeBench(runs, timeoutMs);
    console.log(`\n${res.markdown}\n`);
    checks.push(...res.checks);
  }
  if (magnetPicked.length > 0) {
    const mag = await runMagnetBench(magnetPicked, runs, timeoutMs);
    console.log(`\n${mag.markdown}\n`);
    checks.push(...mag.checks);
  }
  if (dhtPicked.length > 0) {
    const dht = await runDhtBench(dhtPicked, runs, timeoutMs);
    console.log(`\n${dht.markdown}\n`);
    checks.push(...dht.checks);
  }
  if (encPicked.length > 0) {
    const enc = await runEncryptionBench(encPicked, runs, timeoutMs);
    console.log(`\n${enc.markdown}\n`);
  }
  if (checks.length > 0) {
    console.log('## Targets\n');
    for (const c of checks) console.log(`- ${c.pass ? 'PASS' : 'FAIL'}: ${c.text}`);
    console.log('');
  }

  const charted = results.filter((r) => r.scenario.chart);
  if (!values['no-svg'] && charted.length > 0) {
    const svgPath = path.join(REPO_ROOT, 'docs', 'bench-throughput.svg');
    await fs.mkdir(path.dirname(svgPath), { recursive: true });
    await fs.writeFile(svgPath, throughputSvg(charted));
    console.log(`wrote ${path.relative(REPO_ROOT, svgPath)}`);
  }
  if (values['write-doc']) {
    const docPath = path.join(REPO_ROOT, 'docs', 'BENCHMARKS.md');
    const keptMeta = await readMetadataBlock(docPath);
    await writeDoc(docPath, results, checks, machine, runs, customResults);
    if (metaMarkdown || keptMeta) await writeMetadataDoc(docPath, metaMarkdown || keptMeta);
    console.log(`wrote ${path.relative(REPO_ROOT, docPath)}`);
  }
}

/**
 * Set up the swarm of one scenario and download its torrent with every client, alternating.
 * @param {Scenario} sc
 * @param {Client[]} clients
 * @param {number} runs
 * @param {number} timeoutMs
 * @returns {Promise<ScenarioResult>}
 */
async function runScenario(sc, clients, runs, timeoutMs) {
  log(`scenario ${sc.id}: ${sc.title}`);
  const work = await makeTempDir('tdl-bench-');
  try {
    const dataDir = path.join(work, 'data');
    const root = await makePayload(dataDir, sc.payload);
    const tracker = await startOpentracker();
    const torrent = await createTorrent({
      source: root,
      out: path.join(work, `${sc.payload.name}.torrent`),
      pieceLength: sc.pieceLength,
      trackers: [[tracker.httpUrl]],
    });
    await tracker.addInfoHash(torrent.infoHashHex);
    log(`  payload ${fmtMiB(sc.size)} MiB, info hash ${torrent.infoHashHex}`);
    /** @type {import('./lib/real-peers.mjs').Seeder[]} */
    const seeders = [];
    for (const s of sc.seeders) {
      const opts = { torrent: torrent.path, dataDir, rateLimit: s.rateLimit ?? 0 };
      const seeder =
        s.kind === 'libtorrent' ? await startLibtorrentSeeder(opts) : await startAria2Seeder(opts);
      seeders.push(seeder);
      log(
        `  ${seeder.name} seeder on port ${seeder.port}${s.rateLimit ? `, capped at ${fmtMiB(s.rateLimit)} MiB/s` : ''}`,
      );
    }
    await waitForSeeders(tracker.httpUrl, torrent.infoHashHex, seeders.length);

    /** @type {Record<string, RunResult[]>} */
    const byClient = {};
    for (const c of clients) byClient[c] = [];
    for (let run = 0; run < runs; run++) {
      // Rotate the order so no client always comes first (or last) after a run of another.
      const order = clients.map((_, i) => clients[(i + run) % clients.length]);
      for (const client of /** @type {Client[]} */ (order)) {
        // Every seeder must still be there (a downloader that left tells the tracker).
        await waitForSeeders(tracker.httpUrl, torrent.infoHashHex, seeders.length, 30_000);
        spawnSync('sync'); // start each run with no dirty pages of the previous one
        const out = await makeTempDir('tdl-bench-out-');
        try {
          const r = await download(client, torrent.path, out, timeoutMs);
          const diffs = await compareTrees(root, path.join(out, sc.payload.name));
          if (diffs.length > 0) {
            throw new Error(
              `${CLIENT_LABEL[client]} wrote wrong data: ${diffs.slice(0, 5).join('; ')}`,
            );
          }
          byClient[client]?.push(r);
          log(
            `  run ${run + 1}/${runs} ${CLIENT_LABEL[client].padEnd(10)} wall ${fmtS(r.wallMs)} s, ` +
              `CPU ${fmtS(r.cpuMs)} s, peak RSS ${fmtMiB(r.peakRssKb * KiB)} MiB, ` +
              `${fmtMiB(sc.size / (r.wallMs / 1000))} MiB/s`,
          );
        } finally {
          await removeTempDir(out);
        }
      }
    }
    for (const s of seeders) await s.stop();
    await tracker.stop();
    return { scenario: sc, runs: byClient, clients };
  } finally {
    await removeTempDir(work);
  }
}

/**
 * @param {Client} client
 * @param {string} torrent
 * @param {string} out
 * @param {number} timeoutMs
 * @returns {Promise<RunResult>}
 */
async function download(client, torrent, out, timeoutMs) {
  if (client === 'aria2') return aria2Download({ torrent, outDir: out, timeoutMs });
  if (client === 'libtorrent') return libtorrentDownload({ torrent, outDir: out, timeoutMs });
  const r = await tdlDownload({ torrent, out, timeoutMs, args: ['--quiet'] });
  if (r.code !== 0) {
    const events = r.events.filter((e) => e.event !== 'progress').slice(-5);
    throw new Error(
      `tdl exited with ${r.code ?? r.signal}\n--- tdl stderr (tail) ---\n${r.stderrTail}` +
        `\n--- tdl events ---\n${events.map((e) => JSON.stringify(e)).join('\n')}`,
    );
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Scenarios 4–9 and 11: swarms of other shapes (tdl serving, crowds, hanging addresses, transmission,
// waste). Each sets up its own swarm and returns its own table and target checks.

/**
 * @typedef {{ id: number, markdown: string, checks: { pass: boolean, text: string }[] }} CustomResult
 * @typedef {{ runs: number, timeoutMs: number, clients: Client[], machine: ReturnType<typeof machineInfo> }} CustomCtx
 * @typedef {{ id: number, title: string, programs: string[], run: (ctx: CustomCtx) => Promise<CustomResult> }} CustomScenario
 */

/** Scenario 5 and 6: the seeder's cap. */
const FLOCK_CAP = 4 * MiB;
/** Scenario 6: the crowd's leechers (REAL-PEERS: a tit-for-tat crowd). */
const CROWD = { leechers: 3, unchokeSlots: 3, uploadRateLimit: 1 * MiB };
/** Scenario 7: addresses whose connects hang. */
const HANGING_PEERS = 40;
const CUSTOM_TARGETS = {
  /** scenario 5: the last of four tdl downloaders done within this */
  flockMs: 12_000,
  /** scenario 7: tdl at most this × libtorrent */
  hanging: 1.5,
  /** scenario 8: tdl at most this × libtorrent */
  transmission: 1.2,
  /** scenario 9: wasted bytes below this fraction of the size */
  waste: 0.005,
};

/**
 * A payload, a tracker and a torrent announcing to it (info hash whitelisted), in pieces of 256
 * KiB unless `spec.pieceLength` says otherwise.
 * @param {import('./lib/real-peers.mjs').PayloadSpec & { pieceLength?: number }} spec
 */
async function makeSwarm(spec) {
  const work = await makeTempDir('tdl-bench-');
  const dataDir = path.join(work, 'data');
  const root = await makePayload(dataDir, spec);
  const tracker = await startOpentracker();
  const torrent = await createTorrent({
    source: root,
    out: path.join(work, `${spec.name}.torrent`),
    pieceLength: spec.pieceLength ?? 256 * KiB,
    trackers: [[tracker.httpUrl]],
  });
  await tracker.addInfoHash(torrent.infoHashHex);
  return { work, dataDir, root, tracker, torrent: torrent.path, infoHash: torrent.infoHashHex };
}

/**
 * Download into a fresh folder with one client, check the bytes, remove the folder.
 * @param {Client} client
 * @param {{ torrent: string, root: string, name: string, timeoutMs: number, args?: string[] }} o
 * @returns {Promise<RunResult & { events?: Record<string, unknown>[] }>}
 */
async function checkedDownload(client, o) {
  const out = await makeTempDir('tdl-bench-out-');
  try {
    /** @type {RunResult & { events?: Record<string, unknown>[] }} */
    let r;
    if (client === 'tdl') {
      const t = await tdlDownload({
        torrent: o.torrent,
        out,
        timeoutMs: o.timeoutMs,
        args: ['--quiet', ...(o.args ?? [])],
      });
      assertTdlOk(t);
      r = t;
    } else r = await download(client, o.torrent, out, o.timeoutMs);
    const diffs = await compareTrees(o.root, path.join(out, o.name));
    if (diffs.length > 0) {
      throw new Error(`${CLIENT_LABEL[client]} wrote wrong data: ${diffs.slice(0, 5).join('; ')}`);
    }
    return r;
  } finally {
    await removeTempDir(out);
  }
}

/** @param {string[][]} rows */
const mdTable = (rows) =>
  [rows[0] ?? [], (rows[0] ?? []).map(() => '---'), ...rows.slice(1)]
    .map((row) => `| ${row.join(' | ')} |`)
    .join('\n');

/** @param {number[]} walls */
const wallsText = (walls) => walls.map((w) => fmtS(w)).join(', ');

/**
 * Scenarios 4 and 11: each downloader alone fetches the payload from `tdl seed`, then from a
 * libtorrent seeder (tdl among the downloaders with `tdlDownloads`). Check: each downloader at
 * least as fast from tdl.
 * @param {number} id
 * @param {string} title
 * @param {{ name: string, size: number, pieceLength: number, tdlDownloads: boolean }} spec
 * @returns {CustomScenario}
 */
function serve(id, title, spec) {
  return {
    id,
    title,
    programs: ['opentracker', 'libtorrent', 'aria2c'],
    run: (ctx) =>
      serveScenario(ctx, {
        id,
        title,
        ...spec,
        downloaders: ctx.clients.filter((c) => spec.tdlDownloads || c !== 'tdl'),
      }),
  };
}

/**
 * @param {CustomCtx} ctx
 * @param {{ id: number, title: string, name: string, size: number, pieceLength: number,
 *   downloaders: Client[] }} o
 * @returns {Promise<CustomResult>}
 */
async function serveScenario({ runs, timeoutMs, machine }, o) {
  const { name, size, pieceLength, downloaders } = o;
  const sw = await makeSwarm({ name, size, pieceLength });
  /** @type {Record<string, number[]>} */
  const walls = {};
  for (const seederKind of /** @type {const} */ (['tdl', 'libtorrent'])) {
    const seeder =
      seederKind === 'tdl'
        ? await startTdlPeer({ command: 'seed', torrent: sw.torrent, out: sw.root })
        : await startLibtorrentSeeder({ torrent: sw.torrent, dataDir: sw.dataDir });
    for (let run = 0; run < runs; run++) {
      for (const d of downloaders) {
        await waitForSeeders(sw.tracker.httpUrl, sw.infoHash, 1, 30_000);
        spawnSync('sync');
        const r = await checkedDownload(d, { torrent: sw.torrent, root: sw.root, name, timeoutMs });
        const key = `${seederKind}→${d}`;
        (walls[key] ??= []).push(r.wallMs);
        log(
          `  run ${run + 1}/${runs} ${seederKind} seeder → ${CLIENT_LABEL[d]}: ${fmtS(r.wallMs)} s`,
        );
      }
    }
    await seeder.stop();
  }
  await sw.tracker.stop();
  await removeTempDir(sw.work);
  const rows = [['Seeder', 'Downloader', 'Wall (median)', 'Rate', 'Runs (wall s)']];
  for (const [key, ws] of Object.entries(walls)) {
    const [s, d] = key.split('→');
    const m = median(ws);
    rows.push([
      s === 'tdl' ? '`tdl seed`' : 'libtorrent',
      CLIENT_LABEL[/** @type {Client} */ (d)],
      `${fmtS(m)} s`,
      `${fmtMiB(size / (m / 1000))} MiB/s`,
      wallsText(ws),
    ]);
  }
  const checks = [];
  for (const d of downloaders) {
    const fromTdl = walls[`tdl→${d}`];
    const fromLt = walls[`libtorrent→${d}`];
    if (!fromTdl || !fromLt) continue;
    checks.push({
      pass: median(fromTdl) <= median(fromLt),
      text: `scenario ${o.id}: ${CLIENT_LABEL[d]} downloader from tdl seed ${fmtS(median(fromTdl))} s <= from a libtorrent seeder ${fmtS(median(fromLt))} s`,
    });
  }
  return {
    id: o.id,
    checks,
    markdown:
      `### Scenario ${o.id}: ${o.title}\n\n${size / MiB} MiB, pieces of ${pieceLength >= MiB ? `${pieceLength / MiB} MiB` : `${pieceLength / KiB} KiB`}, ` +
      `one unthrottled seeder, ${runsText(runs)} per pair; ${machine.short}.\n\n${mdTable(rows)}`,
  };
}

/** @type {CustomScenario[]} */
const CUSTOM = [
  serve(
    4,
    'Serve: 256 MiB from tdl seed vs from a libtorrent seeder, to one downloader at a time',
    {
      name: 'serve-256MiB.bin',
      size: 256 * MiB,
      pieceLength: 256 * KiB,
      tdlDownloads: false,
    },
  ),
  serve(
    11,
    'Serve big pieces: 512 MiB in 16 MiB pieces from tdl seed vs from a libtorrent seeder, to one downloader at a time',
    { name: 'serve-512MiB.bin', size: 512 * MiB, pieceLength: 16 * MiB, tdlDownloads: true },
  ),
  {
    id: 5,
    title:
      'Flock: four downloaders of one kind started together on one seeder capped at 4 MiB/s, 32 MiB',
    programs: ['opentracker', 'libtorrent', 'aria2c'],
    async run({ runs, timeoutMs, clients, machine }) {
      const name = 'flock-32MiB.bin';
      const size = 32 * MiB;
      const sw = await makeSwarm({ name, size });
      await startLibtorrentSeeder({
        torrent: sw.torrent,
        dataDir: sw.dataDir,
        rateLimit: FLOCK_CAP,
      });
      /** @type {Record<string, { last: number[], first: number[] }>} */
      const res = {};
      for (let run = 0; run < runs; run++) {
        for (const c of clients) {
          await waitForSeeders(sw.tracker.httpUrl, sw.infoHash, 1, 30_000);
          spawnSync('sync');
          const rs = await Promise.all(
            [0, 1, 2, 3].map(() =>
              checkedDownload(c, { torrent: sw.torrent, root: sw.root, name, timeoutMs }),
            ),
          );
          const ws = rs.map((r) => r.wallMs);
          const e = (res[c] ??= { last: [], first: [] });
          e.last.push(Math.max(...ws));
          e.first.push(Math.min(...ws));
          log(`  run ${run + 1}/${runs} ${CLIENT_LABEL[c]}×4: ${ws.map(fmtS).join(', ')} s`);
        }
      }
      await stopAll();
      const rows = [['Downloaders', 'Last done (median)', 'First done (median)', 'Runs (last, s)']];
      for (const c of clients) {
        const e = res[c];
        if (!e) continue;
        rows.push([
          `${CLIENT_LABEL[c]} ×4`,
          `${fmtS(median(e.last))} s`,
          `${fmtS(median(e.first))} s`,
          wallsText(e.last),
        ]);
      }
      const checks = [];
      if (res.tdl) {
        checks.push({
          pass: median(res.tdl.last) <= CUSTOM_TARGETS.flockMs,
          text: `scenario 5: the last of four tdl done in ${fmtS(median(res.tdl.last))} s <= ${fmtS(CUSTOM_TARGETS.flockMs)} s`,
        });
      }
      return {
        id: 5,
        checks,
        markdown:
          `### Scenario 5: ${this.title}\n\nThe seeder alone needs 8 s to send 32 MiB once; ` +
          `downloaders that trade finish together soon after. ${runsText(runs)}; ${machine.short}.\n\n${mdTable(rows)}`,
      };
    },
  },
  {
    id: 6,
    title: `Tit-for-tat crowd: one client among ${CROWD.leechers} libtorrent leechers (3 unchoke slots, 1 MiB/s up) and a seeder capped at 4 MiB/s, 32 MiB`,
    programs: ['opentracker', 'libtorrent', 'aria2c'],
    async run({ runs, timeoutMs, clients, machine }) {
      const name = 'crowd-32MiB.bin';
      const size = 32 * MiB;
      const sw = await makeSwarm({ name, size });
      await startLibtorrentSeeder({
        torrent: sw.torrent,
        dataDir: sw.dataDir,
        rateLimit: FLOCK_CAP,
      });
      /** @type {Record<string, { subject: number[], crowd: number[] }>} */
      const res = {};
      const leech = async () => {
        const out = await makeTempDir('tdl-bench-out-');
        try {
          const r = await libtorrentLeech({
            torrent: sw.torrent,
            outDir: out,
            timeoutMs,
            uploadRateLimit: CROWD.uploadRateLimit,
            unchokeSlots: CROWD.unchokeSlots,
          });
          return r.doneMs;
        } finally {
          await removeTempDir(out);
        }
      };
      for (let run = 0; run < runs; run++) {
        for (const c of clients) {
          await waitForSeeders(sw.tracker.httpUrl, sw.infoHash, 1, 30_000);
          spawnSync('sync');
          const subject =
            c === 'libtorrent'
              ? leech()
              : checkedDownload(c, {
                  torrent: sw.torrent,
                  root: sw.root,
                  name,
                  timeoutMs,
                  args: ['--upload-slots', String(CROWD.unchokeSlots), '--max-upload-rate', '1M'],
                }).then((r) => r.wallMs);
          const crowd = await Promise.all(Array.from({ length: CROWD.leechers }, leech));
          const s = await subject;
          const e = (res[c] ??= { subject: [], crowd: [] });
          e.subject.push(s);
          e.crowd.push(median(crowd));
          log(
            `  run ${run + 1}/${runs} ${CLIENT_LABEL[c]} ${fmtS(s)} s, crowd ${crowd.map(fmtS).join(', ')} s`,
          );
        }
      }
      await stopAll();
      const rows = [
        [
          'Client in the crowd',
          'Its finish (median)',
          "Crowd's median finish (median)",
          'Runs (client / crowd, s)',
        ],
      ];
      for (const c of clients) {
        const e = res[c];
        if (!e) continue;
        rows.push([
          CLIENT_LABEL[c],
          `${fmtS(median(e.subject))} s`,
          `${fmtS(median(e.crowd))} s`,
          e.subject.map((s, i) => `${fmtS(s)} / ${fmtS(e.crowd[i] ?? NaN)}`).join(', '),
        ]);
      }
      const checks = [];
      if (res.tdl) {
        checks.push({
          pass: median(res.tdl.subject) <= median(res.tdl.crowd),
          text: `scenario 6: tdl done in ${fmtS(median(res.tdl.subject))} s <= the crowd's median ${fmtS(median(res.tdl.crowd))} s`,
        });
      }
      return {
        id: 6,
        checks,
        markdown:
          `### Scenario 6: ${this.title}\n\nThe client is started with the crowd; tdl runs with ` +
          `\`--upload-slots 3 --max-upload-rate 1M\`, libtorrent with the crowd's settings. ` +
          `${runsText(runs)}; ${machine.short}.\n\n${mdTable(rows)}`,
      };
    },
  },
  {
    id: 7,
    title: `Hanging addresses: one libtorrent seeder and ${HANGING_PEERS} listed peers whose connects hang, 16 MiB`,
    programs: ['opentracker', 'libtorrent', 'aria2c'],
    async run({ runs, timeoutMs, clients, machine }) {
      const name = 'hanging-16MiB.bin';
      const size = 16 * MiB;
      const sw = await makeSwarm({ name, size });
      await startLibtorrentSeeder({ torrent: sw.torrent, dataDir: sw.dataDir });
      const hanging = await startHangingPeers(HANGING_PEERS);
      // The tracker hands the hanging addresses out with the seeder's (they claim to seed).
      for (const port of hanging.ports) {
        await announce(sw.tracker.httpUrl, sw.infoHash, { port, left: 0, event: 'started' });
      }
      /** @type {Record<string, number[]>} */
      const res = {};
      for (let run = 0; run < runs; run++) {
        for (const c of clients) {
          await waitForSeeders(sw.tracker.httpUrl, sw.infoHash, HANGING_PEERS + 1, 30_000);
          spawnSync('sync');
          const r = await checkedDownload(c, {
            torrent: sw.torrent,
            root: sw.root,
            name,
            timeoutMs,
          });
          (res[c] ??= []).push(r.wallMs);
          log(`  run ${run + 1}/${runs} ${CLIENT_LABEL[c]}: ${fmtS(r.wallMs)} s`);
        }
      }
      await stopAll();
      const rows = [['Client', 'Wall (median)', 'Runs (wall s)']];
      for (const c of clients)
        if (res[c]) rows.push([CLIENT_LABEL[c], `${fmtS(median(res[c]))} s`, wallsText(res[c])]);
      const checks = [];
      if (res.tdl && res.libtorrent) {
        const lim = CUSTOM_TARGETS.hanging * median(res.libtorrent);
        checks.push({
          pass: median(res.tdl) <= lim,
          text: `scenario 7: tdl ${fmtS(median(res.tdl))} s <= ${CUSTOM_TARGETS.hanging} × libtorrent's ${fmtS(median(res.libtorrent))} s = ${fmtS(lim)} s`,
        });
      }
      return {
        id: 7,
        checks,
        markdown:
          `### Scenario 7: ${this.title}\n\nThe ${HANGING_PEERS} addresses are loopback listeners ` +
          `with full accept queues that never accept (SYNs dropped, not refused), announced to ` +
          `opentracker as seeders. ${runsText(runs)}; ${machine.short}.\n\n${mdTable(rows)}`,
      };
    },
  },
  {
    id: 8,
    title: 'Transmission: one transmission-daemon seeder, 32 MiB, a fresh swarm for every download',
    programs: ['opentracker', 'libtorrent', 'transmission-daemon', 'transmission-remote'],
    async run({ runs, timeoutMs, clients, machine }) {
      const name = 'transmission-32MiB.bin';
      const size = 32 * MiB;
      const picked = clients.filter((c) => c !== 'aria2');
      /** @type {Record<string, number[]>} */
      const res = {};
      /** @type {Record<string, number>} */
      const failed = {};
      for (let run = 0; run < runs; run++) {
        for (const c of picked) {
          const sw = await makeSwarm({ name, size });
          const seeder = await startTransmissionSeeder({
            torrent: sw.torrent,
            dataDir: sw.dataDir,
          });
          try {
            await waitForSeeders(sw.tracker.httpUrl, sw.infoHash, 1, 60_000);
            const r = await checkedDownload(c, {
              torrent: sw.torrent,
              root: sw.root,
              name,
              timeoutMs,
            });
            (res[c] ??= []).push(r.wallMs);
            log(`  run ${run + 1}/${runs} ${CLIENT_LABEL[c]}: ${fmtS(r.wallMs)} s`);
          } catch (e) {
            failed[c] = (failed[c] ?? 0) + 1;
            log(`  run ${run + 1}/${runs} ${CLIENT_LABEL[c]} FAILED: ${String(e).split('\n')[0]}`);
          } finally {
            await seeder.stop();
            await sw.tracker.stop();
            await removeTempDir(sw.work);
          }
        }
      }
      const rows = [['Client', 'Wall (median)', 'Complete', 'Runs (wall s)']];
      for (const c of picked) {
        const ws = res[c] ?? [];
        rows.push([
          CLIENT_LABEL[c],
          ws.length ? `${fmtS(median(ws))} s` : '—',
          `${ws.length} of ${runs}`,
          wallsText(ws),
        ]);
      }
      const checks = [];
      if (res.tdl && res.libtorrent) {
        const lim = CUSTOM_TARGETS.transmission * median(res.libtorrent);
        checks.push({
          pass: median(res.tdl) <= lim && !failed.tdl,
          text: `scenario 8: tdl ${fmtS(median(res.tdl))} s <= ${CUSTOM_TARGETS.transmission} × libtorrent's ${fmtS(median(res.libtorrent))} s = ${fmtS(lim)} s, ${res.tdl.length} of ${runs} complete`,
        });
      }
      return {
        id: 8,
        checks,
        markdown: `### Scenario 8: ${this.title}\n\n${runsText(runs)} per client; ${machine.short}.\n\n${mdTable(rows)}`,
      };
    },
  },
  {
    id: 9,
    title:
      "Waste: tdl's wasted bytes with four capped libtorrent seeders (64 MiB) and in npm run demo",
    programs: ['opentracker', 'libtorrent'],
    async run({ runs, timeoutMs, machine }) {
      const name = 'waste-64MiB.bin';
      const size = 64 * MiB;
      const sw = await makeSwarm({ name, size });
      for (let i = 0; i < 4; i++) {
        await startLibtorrentSeeder({
          torrent: sw.torrent,
          dataDir: sw.dataDir,
          rateLimit: SEEDER_CAP,
        });
      }
      const rows = [['Swarm', 'Run', 'Wall', 'Wasted', 'Share', 'wastedBy']];
      let worst = 0;
      for (let run = 0; run < runs; run++) {
        await waitForSeeders(sw.tracker.httpUrl, sw.infoHash, 4, 30_000);
        const r = await checkedDownload('tdl', {
          torrent: sw.torrent,
          root: sw.root,
          name,
          timeoutMs,
        });
        const done = r.events?.find((e) => e.event === 'done') ?? {};
        const wasted = Number(done.wasted ?? NaN);
        worst = Math.max(worst, wasted / size);
        rows.push([
          'four libtorrent seeders, 4 MiB/s each',
          String(run + 1),
          `${fmtS(r.wallMs)} s`,
          `${wasted} B`,
          `${((100 * wasted) / size).toFixed(3)} %`,
          `\`${JSON.stringify(done.wastedBy ?? {})}\``,
        ]);
        log(`  run ${run + 1}/${runs} tdl wasted ${wasted} B ${JSON.stringify(done.wastedBy)}`);
      }
      await stopAll();
      // npm run demo prints its summary line (with the waste) only on a terminal: give it one.
      const demo = spawnSync(
        'script',
        ['-qec', `${process.execPath} scripts/demo.mjs`, '/dev/null'],
        {
          cwd: REPO_ROOT,
          encoding: 'utf8',
          timeout: timeoutMs,
        },
      );
      const text = (demo.stdout ?? '').replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
      const m = /([\d.]+ [KMG]?i?B) wasted \(([^)]*)\)/.exec(text);
      const ok = demo.status === 0;
      rows.push([
        '`npm run demo` (32 MiB, two seeders at 6 MiB/s)',
        '1',
        '—',
        ok ? (m ? (m[1] ?? '') : '0 B') : `demo failed (${demo.status})`,
        '—',
        m ? (m[2] ?? '') : '—',
      ]);
      log(`  demo: ${ok ? (m ? m[0] : 'nothing wasted') : 'failed'}`);
      return {
        id: 9,
        checks: [
          {
            pass: worst < CUSTOM_TARGETS.waste && ok,
            text: `scenario 9: tdl's worst waste ${(100 * worst).toFixed(3)} % < ${100 * CUSTOM_TARGETS.waste} % (demo: ${ok ? (m ? m[1] : '0 B') : 'failed'})`,
          },
        ],
        markdown: `### Scenario 9: ${this.title}\n\n${machine.short}.\n\n${mdTable(rows)}`,
      };
    },
  },
];

// ---------------------------------------------------------------------------------------------
// Statistics and reports

/**
 * Medians of one client's runs, and the run whose wall time is closest to the median (its
 * series goes into the chart).
 * @param {RunResult[]} runs
 */
function summary(runs) {
  const wallMs = median(runs.map((r) => r.wallMs));
  const typical = [...runs].sort(
    (a, b) => Math.abs(a.wallMs - wallMs) - Math.abs(b.wallMs - wallMs),
  )[0];
  return {
    wallMs,
    cpuMs: median(runs.map((r) => r.cpuMs)),
    peakRssKb: median(runs.map((r) => r.peakRssKb)),
    maxRssKb: Math.max(...runs.map((r) => r.peakRssKb)),
    walls: runs.map((r) => r.wallMs),
    typical,
  };
}

/** @param {number} n */
const runsText = (n) => `${n} run${n === 1 ? '' : 's'}`;

/**
 * The rate between 10 % and 90 % of the bytes (start-up and the last pieces left out), from a
 * client's progress samples; null when they are too sparse to tell.
 * @param {{ t: number, bytes: number }[]} series
 * @param {number} size
 */
function steadyRate(series, size) {
  const at = (/** @type {number} */ frac) => series.find((p) => p.bytes >= frac * size)?.t;
  const t10 = at(0.1);
  const t90 = at(0.9);
  if (t10 === undefined || t90 === undefined || t90 - t10 < 200) return null;
  return (0.8 * size) / ((t90 - t10) / 1000);
}

/** @param {number} ms */
const fmtS = (ms) => (ms / 1000).toFixed(2);
/** @param {number} bytes */
const fmtMiB = (bytes) => (bytes / MiB).toFixed(1);
/**
 * @param {number} x
 * @param {number} base
 */
const fmtRatio = (x, base) =>
  base > 0 && Number.isFinite(x / base) ? `${(x / base).toFixed(2)}×` : '—';

/**
 * @param {ScenarioResult} r
 * @param {ReturnType<typeof machineInfo>} machine
 */
function scenarioMarkdown(r, machine) {
  const sc = r.scenario;
  const tdl = r.runs.tdl?.length ? summary(r.runs.tdl) : null;
  const head = ['Client', 'Wall (median)', 'CPU user+sys', 'Peak RSS'];
  head.push('Wall ÷ tdl', 'CPU ÷ tdl', 'RSS ÷ tdl');
  if (sc.cap) head.push('Rate (size ÷ wall)', `Share of ${fmtMiB(sc.cap)} MiB/s`, 'Rate 10–90 %');
  head.push('Runs (wall s)');
  const rows = [head, head.map(() => '---')];
  for (const c of r.clients) {
    const runs = r.runs[c];
    if (!runs?.length) continue;
    const s = summary(runs);
    const row = [
      CLIENT_LABEL[c],
      `${fmtS(s.wallMs)} s`,
      `${fmtS(s.cpuMs)} s`,
      `${fmtMiB(s.peakRssKb * KiB)} MiB`,
      tdl ? fmtRatio(s.wallMs, tdl.wallMs) : '—',
      tdl ? fmtRatio(s.cpuMs, tdl.cpuMs) : '—',
      tdl ? fmtRatio(s.peakRssKb, tdl.peakRssKb) : '—',
    ];
    if (sc.cap) {
      const rate = sc.size / (s.wallMs / 1000);
      const steady = steadyRate(s.typical?.series ?? [], sc.size);
      row.push(
        `${fmtMiB(rate)} MiB/s`,
        `${Math.round((100 * rate) / sc.cap)} %`,
        steady ? `${fmtMiB(steady)} MiB/s` : '—',
      );
    }
    row.push(s.walls.map((w) => fmtS(w)).join(', '));
    rows.push(row);
  }
  const table = rows.map((row) => `| ${row.join(' | ')} |`).join('\n');
  const note = tdl ? '' : '\n\ntdl was left out of this run (`--only`).';
  return (
    `### Scenario ${sc.id}: ${sc.title}\n\n` +
    `${fmtMiB(sc.size)} MiB, pieces of ${sc.pieceLength / KiB} KiB, ` +
    `${runsText(Object.values(r.runs)[0]?.length ?? 0)} per client; ${machine.short}.\n\n${table}${note}`
  );
}

/**
 * @param {ScenarioResult[]} results
 * @returns {{ pass: boolean, text: string }[]}
 */
function targetChecks(results) {
  /** @type {{ pass: boolean, text: string }[]} */
  const checks = [];
  for (const r of results) {
    if (!r.runs.tdl?.length) continue;
    const tdl = summary(r.runs.tdl);
    const id = r.scenario.id;
    if (id === 1) {
      const lt = r.runs.libtorrent?.length ? summary(r.runs.libtorrent) : null;
      const a2 = r.runs.aria2?.length ? summary(r.runs.aria2) : null;
      if (lt) {
        checks.push({
          pass: tdl.wallMs <= lt.wallMs,
          text: `scenario 1: tdl wall time ${fmtS(tdl.wallMs)} s <= libtorrent's ${fmtS(lt.wallMs)} s`,
        });
        checks.push({
          pass: tdl.cpuMs <= lt.cpuMs,
          text: `scenario 1: tdl CPU time ${fmtS(tdl.cpuMs)} s <= libtorrent's ${fmtS(lt.cpuMs)} s`,
        });
      }
      if (a2) {
        checks.push({
          pass: tdl.wallMs <= TARGETS.vsAria2 * a2.wallMs,
          text:
            `scenario 1: tdl wall time ${fmtS(tdl.wallMs)} s <= ${TARGETS.vsAria2} × aria2c's ` +
            `${fmtS(a2.wallMs)} s = ${fmtS(TARGETS.vsAria2 * a2.wallMs)} s`,
        });
      }
    }
    if (id === 2 && r.scenario.cap) {
      const rate = r.scenario.size / (tdl.wallMs / 1000);
      const want = TARGETS.capFraction * r.scenario.cap;
      checks.push({
        pass: rate >= want,
        text:
          `scenario 2: tdl rate ${fmtMiB(rate)} MiB/s >= ${TARGETS.capFraction * 100} % of ` +
          `${fmtMiB(r.scenario.cap)} MiB/s = ${fmtMiB(want)} MiB/s`,
      });
    }
    if (id === 10) {
      const lt = r.runs.libtorrent?.length ? summary(r.runs.libtorrent) : null;
      if (lt) {
        checks.push({
          pass: tdl.wallMs <= TARGETS.manyWallVsLt * lt.wallMs,
          text:
            `scenario 10: tdl wall time ${fmtS(tdl.wallMs)} s <= ${TARGETS.manyWallVsLt} × ` +
            `libtorrent's ${fmtS(lt.wallMs)} s = ${fmtS(TARGETS.manyWallVsLt * lt.wallMs)} s`,
        });
        checks.push({
          pass: tdl.cpuMs <= TARGETS.manyCpuVsLt * lt.cpuMs,
          text:
            `scenario 10: tdl CPU time ${fmtS(tdl.cpuMs)} s <= ${TARGETS.manyCpuVsLt} × ` +
            `libtorrent's ${fmtS(lt.cpuMs)} s = ${fmtS(TARGETS.manyCpuVsLt * lt.cpuMs)} s`,
        });
      }
    }
    const maxRss = id === 10 ? TARGETS.manyMaxRssBytes : TARGETS.maxRssBytes;
    checks.push({
      pass: tdl.maxRssKb * KiB < maxRss,
      text:
        `scenario ${id}: tdl peak RSS ${((tdl.maxRssKb * KiB) / 1e6).toFixed(1)} MB ` +
        `(highest of its runs) < ${maxRss / 1e6} MB`,
    });
  }
  return checks;
}

// ---------------------------------------------------------------------------------------------
// Machine

/**
 * @param {string | undefined} extraCa NODE_EXTRA_CA_CERTS as the bench found it
 * @param {boolean} keepEnv
 */
function machineInfo(extraCa, keepEnv) {
  const cpus = os.cpus();
  const nproc =
    typeof os.availableParallelism === 'function' ? os.availableParallelism() : cpus.length;
  const memGiB = (os.totalmem() / 1024 ** 3).toFixed(1);
  const lt = spawnSync(PYTHON, ['-c', 'import libtorrent as lt; print(lt.__version__)'], {
    encoding: 'utf8',
  });
  const aria2 = findExecutable('aria2c')
    ? (spawnSync('aria2c', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? '')
    : '';
  const ot = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'opentracker'], {
    encoding: 'utf8',
  });
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const ltVersion = lt.status === 0 ? lt.stdout.trim() : 'missing';
  const aria2Version = aria2.replace(/^aria2 version /, '') || 'missing';
  const lines = [
    `- Date: ${date}`,
    `- CPU: ${cpus[0]?.model ?? 'unknown'}, ${nproc} cores (nproc)`,
    `- Memory: ${memGiB} GiB`,
    `- OS: ${os.type()} ${os.release()}`,
    `- Node: ${process.version}`,
    `- libtorrent (python3-libtorrent): ${ltVersion}`,
    `- aria2c: ${aria2Version}`,
    `- opentracker: ${ot.status === 0 && ot.stdout ? ot.stdout : 'unknown version'}`,
    ...(extraCa
      ? [
          `- NODE_EXTRA_CA_CERTS: set (${extraCa}); ` +
            (keepEnv ? 'kept (--keep-env)' : 'removed for the programs measured'),
        ]
      : []),
  ];
  return {
    markdown: lines.join('\n'),
    short:
      `measured ${date.slice(0, 10)} on ${nproc} cores, ${memGiB} GiB, Node ${process.version}, ` +
      `libtorrent ${ltVersion}, aria2c ${aria2Version}`,
  };
}

// ---------------------------------------------------------------------------------------------
// Chart

/** @param {string} s */
const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * A step of 1, 2 or 5 × 10^n giving about `count` ticks up to `max`.
 * @param {number} max
 * @param {number} count
 */
function niceStep(max, count) {
  const raw = max / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const f = raw / pow;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * pow;
}

/**
 * Downloaded bytes over time for each client of each charted scenario, one panel per scenario.
 * @param {ScenarioResult[]} results
 */
function throughputSvg(results) {
  const panelW = 560;
  const panelH = 360;
  const m = { left: 64, right: 20, top: 44, bottom: 78 };
  const width = panelW * results.length;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${panelH}" ` +
      `viewBox="0 0 ${width} ${panelH}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${panelH}" fill="#ffffff"/>`,
  ];
  results.forEach((r, i) => {
    const x0 = i * panelW;
    const plotW = panelW - m.left - m.right;
    const plotH = panelH - m.top - m.bottom;
    /** @type {{ client: Client, points: { t: number, bytes: number }[] }[]} */
    const lines = [];
    for (const c of r.clients) {
      const runs = r.runs[c];
      if (!runs?.length) continue;
      const typical = summary(runs).typical;
      const points = [{ t: 0, bytes: 0 }, ...(typical?.series ?? [])].sort((a, b) => a.t - b.t);
      lines.push({ client: c, points });
    }
    const maxT = Math.max(1, ...lines.flatMap((l) => l.points.map((p) => p.t / 1000)));
    const maxMiB = r.scenario.size / MiB;
    const xStep = niceStep(maxT, 6);
    const yStep = niceStep(maxMiB, 5);
    const xMax = Math.ceil(maxT / xStep) * xStep;
    const yMax = Math.ceil(maxMiB / yStep) * yStep;
    const px = (/** @type {number} */ tS) => x0 + m.left + (tS / xMax) * plotW;
    const py = (/** @type {number} */ mib) => m.top + plotH - (mib / yMax) * plotH;

    parts.push(
      `<text x="${x0 + panelW / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">` +
        `${esc(`Scenario ${r.scenario.id}: ${fmtMiB(r.scenario.size)} MiB`)}</text>`,
      `<text x="${x0 + panelW / 2}" y="36" text-anchor="middle" fill="#555">` +
        `${esc(r.scenario.cap ? `${r.scenario.seeders.length} seeders, ${fmtMiB(r.scenario.cap)} MiB/s together (dashed)` : 'one unthrottled libtorrent seeder')}</text>`,
    );
    // grid and ticks
    for (let v = 0; v <= yMax + 1e-9; v += yStep) {
      const y = py(v).toFixed(1);
      parts.push(
        `<line x1="${px(0)}" y1="${y}" x2="${px(xMax)}" y2="${y}" stroke="#e5e5e5"/>`,
        `<text x="${px(0) - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${+v.toFixed(3)}</text>`,
      );
    }
    for (let v = 0; v <= xMax + 1e-9; v += xStep) {
      const x = px(v).toFixed(1);
      parts.push(
        `<line x1="${x}" y1="${py(0)}" x2="${x}" y2="${py(yMax)}" stroke="#f0f0f0"/>`,
        `<text x="${x}" y="${py(0) + 16}" text-anchor="middle">${+v.toFixed(3)}</text>`,
      );
    }
    parts.push(
      `<line x1="${px(0)}" y1="${py(0)}" x2="${px(xMax)}" y2="${py(0)}" stroke="#333"/>`,
      `<line x1="${px(0)}" y1="${py(0)}" x2="${px(0)}" y2="${py(yMax)}" stroke="#333"/>`,
      `<text x="${px(xMax / 2)}" y="${py(0) + 34}" text-anchor="middle">seconds since start</text>`,
      `<text transform="translate(${x0 + 16} ${py(yMax / 2)}) rotate(-90)" text-anchor="middle">MiB downloaded</text>`,
    );
    if (r.scenario.cap) {
      // What the seeders allow together: a line of slope cap from the origin.
      const capMiBs = r.scenario.cap / MiB;
      const tEnd = Math.min(xMax, yMax / capMiBs);
      const xe = px(tEnd).toFixed(1);
      const ye = py(tEnd * capMiBs).toFixed(1);
      parts.push(
        `<line x1="${px(0)}" y1="${py(0)}" x2="${xe}" y2="${ye}" stroke="#999" stroke-dasharray="5 4"/>`,
      );
    }
    for (const l of lines) {
      const step = Math.max(1, Math.ceil(l.points.length / 1500));
      const pts = l.points
        .filter((_, k) => k % step === 0 || k === l.points.length - 1)
        .map((p) => `${px(p.t / 1000).toFixed(1)},${py(p.bytes / MiB).toFixed(1)}`)
        .join(' ');
      parts.push(
        `<polyline fill="none" stroke="${CLIENT_COLOR[l.client]}" stroke-width="2" points="${pts}"/>`,
      );
    }
    // legend
    const legend = lines.map((l) => ({
      color: CLIENT_COLOR[l.client],
      label: `${CLIENT_LABEL[l.client]} (${fmtS(summary(r.runs[l.client] ?? []).wallMs)} s)`,
    }));
    let lx = x0 + m.left;
    const ly = panelH - 18;
    for (const item of legend) {
      parts.push(
        `<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${item.color}" stroke-width="3"/>`,
        `<text x="${lx + 28}" y="${ly}" dominant-baseline="middle">${esc(item.label)}</text>`,
      );
      lx += 44 + item.label.length * 6.8;
    }
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// docs/BENCHMARKS.md

/**
 * Write the document: fixed text about the method, then the results. A scenario that was not run
 * this time keeps its section from the existing document.
 * @param {string} docPath
 * @param {ScenarioResult[]} results
 * @param {{ pass: boolean, text: string }[]} checks
 * @param {ReturnType<typeof machineInfo>} machine
 * @param {number} runs
 * @param {CustomResult[]} [customResults] scenarios 4 to 9
 */
async function writeDoc(docPath, results, checks, machine, runs, customResults = []) {
  const old = await fs.readFile(docPath, 'utf8').catch(() => '');
  /** @param {number} id */
  const block = (id) => {
    const r = results.find((x) => x.scenario.id === id);
    const cr = customResults.find((x) => x.id === id);
    const start = `<!-- scenario ${id} start -->`;
    const end = `<!-- scenario ${id} end -->`;
    if (cr) {
      const lines = cr.checks.map(
        (c) => `- ${c.pass ? 'PASS' : 'FAIL'}: ${c.text.replace(/^scenario \d+: /, '')}`,
      );
      return `${start}\n\n${cr.markdown}\n\n${lines.length ? `Targets:\n\n${lines.join('\n')}\n\n` : ''}${end}`;
    }
    if (r) {
      const own = checks.filter((c) => c.text.startsWith(`scenario ${id}:`));
      const lines = own.map(
        (c) => `- ${c.pass ? 'PASS' : 'FAIL'}: ${c.text.replace(/^scenario \d+: /, '')}`,
      );
      return `${start}\n\n${scenarioMarkdown(r, machine)}\n\n${lines.length ? `Targets:\n\n${lines.join('\n')}\n\n` : ''}${end}`;
    }
    const i = old.indexOf(start);
    const j = old.indexOf(end);
    if (i >= 0 && j > i) return old.slice(i, j + end.length);
    return `${start}\n\n### Scenario ${id}\n\nNot measured yet.\n\n${end}`;
  };
  // Sections other scenarios write (magnet-dht, pipeline, scale, metadata) and the hand-written findings about
  // the latest run stay from one rewrite to the next.
  const keptNotes = () =>
    ['magnet-dht', 'pipeline', 'scale', 'notes', 'metadata']
      .map((name) => {
        const i = old.indexOf(`<!-- ${name} start -->`);
        const j = old.indexOf(`<!-- ${name} end -->`);
        return i >= 0 && j > i ? `\n${old.slice(i, j + `<!-- ${name} end -->`.length)}\n` : '';
      })
      .join('');
  const text = `# Benchmarks

\`npm run bench\` builds tdl and runs \`scripts/bench.mjs\`: it sets up a swarm of real programs on
127.0.0.1 and downloads the same torrent with tdl, with aria2c and with libtorrent's own downloader,
in the same run.

\`\`\`sh
npm run bench                                 # every scenario, 3 runs per client
npm run bench -- --scenario 1 --runs 5        # one scenario
npm run bench -- --only aria2,libtorrent      # leave a client out
npm run bench -- --write-doc                  # also rewrite this file
\`\`\`

## Method

- The swarm: opentracker (its info hash whitelisted) and seeders from python3-libtorrent (TCP only:
  uTP, DHT, local discovery, UPnP and NAT-PMP off) and aria2c (DHT, local discovery and peer
  exchange off). A seeder is capped with libtorrent's \`upload_rate_limit\`, every address being put
  in its global peer class so the cap holds on loopback, or with aria2c's
  \`--max-overall-upload-limit\`. Downloads start once the tracker lists every seeder.
- Scenario 2 uses four libtorrent seeders unless \`--seeders2 mixed\` asks for two libtorrent and
  two aria2c: aria2c's upload cap lets bursts far above it through (over 20 MiB in half a second
  from a seeder capped at 4 MiB/s), which makes the 16 MiB/s ceiling meaningless. Its table gives
  each client's rate as size ÷ wall time (start-up included; the target uses this one) and the
  rate between 10 % and 90 % of the bytes, from the progress samples of its median run.
- The downloaders: \`tdl download FILE.torrent -o DIR --json --quiet\`;
  \`aria2c --seed-time=0 --file-allocation=none\` with the same discovery options off; libtorrent 2
  through a few lines of Python (\`scripts/lib/lt_tool.py download\`, TCP only). Each leaves the
  swarm (telling the tracker) once it has every piece.
- Each client downloads the torrent N times (3 unless \`--runs\`), the clients taking turns in a
  rotating order. Every download is checked byte for byte against the source; its output folder is
  then removed, and \`sync\` runs before the next one. The seeders' data stays in the page cache.
- Wall time runs from starting the program to its exit, start-up included. CPU time is user + system
  time and peak RSS the largest resident set, both from the kernel's accounting of the finished
  process (\`/usr/bin/time\`, or \`wait4\` when that is missing). Tables give medians; the ratios
  divide each client's median by tdl's (above 1× means tdl does better).
- The chart (\`docs/bench-throughput.svg\`) shows the run of median wall time for each client: tdl's
  verified bytes from its \`progress\` events, libtorrent's verified bytes from its own status, and
  aria2c's bytes written to disk, sampled every 100 ms. Where a line goes flat before the end of its
  client's wall time, the client had every byte and was still shutting down.
- Targets: in scenario 1 tdl's wall time at most libtorrent's and at most 0.7 × aria2c's; tdl's peak
  RSS under 100 MB; in scenario 2 tdl's rate (size ÷ wall time) at least 90 % of the 16 MiB/s the
  seeders allow together. Scenario 10 (3,000 small files) runs only when named (\`--scenario 10\`).

## Machine of the latest run

${machine.markdown}

## Results

![Downloaded bytes over time](bench-throughput.svg)

${block(1)}

${block(2)}

${block(3)}

## Other swarms (scenarios 4–9, 11)

Run only when named: \`npm run bench -- --scenario 4 --scenario 5 …\` (\`--runs N\` as above).
Each sets up swarms of its own; see each table's note.

- 4, Serve: libtorrent's downloader and aria2c, each alone, download 256 MiB from \`tdl seed\`,
  then from a libtorrent seeder. Target: libtorrent's downloader at least as fast from tdl.
- 5, Flock: four downloaders of one kind at once on a seeder capped at 4 MiB/s, 32 MiB; the time
  the last is done. Target: tdl ×4 within 12 s.
- 6, Tit-for-tat crowd: the client among three libtorrent leechers (3 unchoke slots, 1 MiB/s up,
  on loopback too) and a seeder capped at 4 MiB/s, 32 MiB. Target: tdl done no later than the
  crowd's median.
- 7, Hanging addresses: a libtorrent seeder announced with 40 addresses whose connects hang, 16
  MiB. Target: tdl within 1.5 × libtorrent.
- 8, Transmission: a transmission-daemon seeder, 32 MiB, a new tracker and seeder for every
  download. Target: tdl within 1.2 × libtorrent, every download complete.
- 9, Waste: tdl's \`done.wasted\` and \`wastedBy\` in scenario 2's swarm and in \`npm run demo\`.
  Target: under 0.5 %.
- 11, Serve big pieces: tdl, libtorrent's downloader and aria2c, each alone, download 512 MiB in
  pieces of 16 MiB from \`tdl seed\`, then from a libtorrent seeder. Target: each at least as
  fast from tdl.

${block(4)}

${block(5)}

${block(6)}

${block(7)}

${block(8)}

${block(9)}

${block(10)}
${keptNotes()}`;
  await fs.mkdir(path.dirname(docPath), { recursive: true });
  await fs.writeFile(docPath, await formatMarkdown(text, docPath));
}

/**
 * Format with the project's prettier settings, so \`prettier --check\` accepts the file.
 * @param {string} text
 * @param {string} filepath
 */
async function formatMarkdown(text, filepath) {
  try {
    const prettier = await import('prettier');
    const config = (await prettier.resolveConfig(filepath)) ?? {};
    return await prettier.format(text, { ...config, filepath, parser: 'markdown' });
  } catch {
    return text;
  }
}

/** @param {string} msg */
function log(msg) {
  process.stderr.write(`${msg}\n`);
}

main().catch(async (e) => {
  console.error(e instanceof Error ? e.message : e);
  await stopAll();
  process.exitCode = 1;
});
