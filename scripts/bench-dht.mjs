#!/usr/bin/env node
// @ts-check
/**
 * Benchmark: time to first peer through the DHT, on a loopback network of independent DHT
 * nodes (npm `bittorrent-dht`, a devDependency), no tracker anywhere.
 *
 *   npm run build && node scripts/bench-dht.mjs [--nodes 24] [--runs 10]
 *
 * Each run starts a fresh tdl `Dht` (cold: no cache, one bootstrap node), asks a
 * `DhtPeerSource` for an info hash one node announced, and times start() → first peer.
 * Target: first peer within 2 s.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import DHT from 'bittorrent-dht';
import { median } from './lib/bench-common.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = path.join(ROOT, 'dist', 'dht', 'dht.js');
const TARGET_MS = 2000;

const { values } = parseArgs({
  options: { nodes: { type: 'string', default: '24' }, runs: { type: 'string', default: '10' } },
});
const NODES = Number(values.nodes);
const RUNS = Number(values.runs);

if (!existsSync(DIST)) {
  console.error(`${DIST} is missing: run npm run build`);
  process.exit(2);
}
const { Dht, DhtPeerSource } = await import(pathToFileURL(DIST).href);

/** Same recipe as test/helpers/dht-network.ts. */
async function startNetwork(count) {
  const nodes = [];
  for (let i = 0; i < count; i++) {
    const bootstrap =
      i === 0 ? false : [...new Set([0, (i * 7919) % i])].map((j) => `127.0.0.1:${nodes[j].port}`);
    const dht = new DHT({ bootstrap, host: '127.0.0.1' });
    dht.on('error', () => {});
    dht.on('warning', () => {});
    await new Promise((resolve) => dht.listen(0, '127.0.0.1', resolve));
    const port = dht.address().port;
    if (!dht.ready) await new Promise((resolve) => dht.once('ready', resolve));
    nodes.push({ dht, port });
  }
  return nodes;
}

const nodes = await startNetwork(NODES);
const times = [];
try {
  for (let run = 0; run < RUNS; run++) {
    const infoHash = createHash('sha1').update(`bench-dht-${run}`).digest();
    const announcer = nodes[(run * 5 + 3) % NODES];
    await new Promise((resolve, reject) =>
      announcer.dht.announce(infoHash, 20000 + run, (err) => (err ? reject(err) : resolve())),
    );
    const boot = nodes[(run * 11 + 7) % NODES];
    const dht = new Dht({
      port: 0,
      bind: '127.0.0.1',
      bootstrap: [{ host: '127.0.0.1', port: boot.port }],
      cacheFile: null,
    });
    const source = new DhtPeerSource(dht, infoHash, {});
    try {
      const t0 = performance.now();
      await dht.start();
      const first = new Promise((resolve) => source.once('peers', resolve));
      source.start();
      const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 30_000).unref());
      const got = await Promise.race([first, timeout]);
      const ms = got ? performance.now() - t0 : Infinity;
      times.push(ms);
      console.log(`run ${run + 1}: first peer after ${ms.toFixed(1)} ms`);
    } finally {
      await source.stop();
      await dht.stop();
    }
  }
} finally {
  await Promise.all(nodes.map((n) => new Promise((r) => n.dht.destroy(r))));
}

const med = median(times);
const max = Math.max(...times);
console.log(
  `\n| DHT nodes | runs | median | max | target |\n|---|---|---|---|---|\n| ${NODES} | ${RUNS} | ${med.toFixed(1)} ms | ${max.toFixed(1)} ms | ${TARGET_MS} ms: ${max <= TARGET_MS ? 'met' : 'MISSED'} |`,
);
process.exitCode = max <= TARGET_MS ? 0 : 1;
