/**
 * A transmission-daemon downloads from `tdl seed`: with its default encryption setting ("prefer
 * encryption"), under which Transmission 3.00 offers only RC4 on the connections it opens (tdl
 * answers with RC4, src/wire/mse.ts), and with "require encryption" (`-er`) from a `tdl seed
 * --encryption require`; and from a magnet link whose only peer is `tdl seed`, so that the
 * metadata too comes from tdl (ut_metadata, BEP 9) before the data. Transmission never dials 127.x peers: the swarm runs on this machine's
 * own IPv4 address, with a tracker of a few lines on it. Skipped when the machine has no address
 * but loopback.
 */
import http from 'node:http';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  REPO_ROOT,
  compareTrees,
  createTorrent,
  findExecutable,
  freePort,
  makePayload,
  makeTempDir,
  removeTempDir,
  spawnTracked,
  stopAll,
  STOP_GRACE_MS,
} from '../../scripts/lib/real-peers.mjs';
import { programsGate } from './swarm.js';

const gate = programsGate(['transmission-daemon', 'transmission-remote']);
const address = Object.values(os.networkInterfaces())
  .flat()
  .find((a) => a?.family === 'IPv4' && !a.internal)?.address;
const TIMEOUT_MS = 120_000;

/** An HTTP tracker that lists every peer that announced (compact, interval 5 s). */
function tinyTracker(host: string): Promise<{ url: string; close: () => void }> {
  const peers = new Map<string, [string, number]>();
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const ip = (req.socket.remoteAddress ?? '').replace('::ffff:', '');
    const port = Number(u.searchParams.get('port'));
    const key = `${ip}:${port}`;
    if (u.searchParams.get('event') === 'stopped') peers.delete(key);
    else if (port > 0) peers.set(key, [ip, port]);
    const list = Buffer.concat(
      [...peers]
        .filter(([k]) => k !== key)
        .map(([, [i, p]]) => Buffer.from([...i.split('.').map(Number), p >> 8, p & 255])),
    );
    res.end(
      Buffer.concat([Buffer.from(`d8:intervali5e5:peers${list.length}:`), list, Buffer.from('e')]),
    );
  });
  return new Promise((resolve) =>
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      resolve({ url: `http://${host}:${port}/announce`, close: () => server.close() });
    }),
  );
}

describe.skipIf(gate.skip || address === undefined)('transmission downloads from tdl seed', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  // Each case's processes, tracker and files go before the next case starts.
  afterEach(async () => {
    await stopAll();
    for (const c of cleanups.splice(0).reverse()) await c();
  }, 30_000);

  const cases = [
    ['with its default encryption ("prefer"): 8 MiB byte for byte', '-ep', [], false],
    [
      'requiring encryption (-er), from tdl seed --encryption require: 8 MiB byte for byte',
      '-er',
      ['--encryption', 'require'],
      false,
    ],
    ['from a magnet link (xt and tr): the metadata, then 8 MiB byte for byte', '-ep', [], true],
  ] as const;
  for (const [title, trEncryption, seedArgs, magnet] of cases)
    it(
      title,
      async () => {
        gate.assertPresent();
        const ip = address!;
        const work = await makeTempDir('tdl-interop-tr-leech-');
        cleanups.push(() => removeTempDir(work));
        const tracker = await tinyTracker(ip);
        cleanups.push(() => tracker.close());
        const seedDir = path.join(work, 'seed');
        const root = await makePayload(seedDir, { name: 'p.bin', size: 8 * 1024 * 1024 + 1 });
        const torrent = path.join(work, 'p.torrent');
        const { infoHashHex } = await createTorrent({
          source: root,
          out: torrent,
          pieceLength: 262144,
          trackers: [[tracker.url]],
        });
        const tdlPort = await freePort();
        spawnTracked(
          `tdl seed :${tdlPort}`,
          process.execPath,
          [
            path.join(REPO_ROOT, 'dist/bundle/main.js'),
            'seed',
            torrent,
            '-o',
            seedDir,
            '--bind',
            ip,
            '--port',
            String(tdlPort),
            '--no-dht',
            '-q',
            ...seedArgs,
          ],
          { stopSignal: 'SIGINT' },
        );
        const cfg = path.join(work, 'cfg');
        const out = path.join(work, 'out');
        await mkdir(cfg);
        await mkdir(out);
        const rpcPort = await freePort();
        const peerPort = await freePort();
        spawnTracked(
          `transmission-daemon :${peerPort}`,
          findExecutable('transmission-daemon')!,
          [
            '-f',
            '-g',
            cfg,
            '-p',
            String(rpcPort),
            '-P',
            String(peerPort),
            '-w',
            out,
            '-O',
            '-Y',
            '--no-utp',
            '-M',
            '-T',
            '-i',
            ip,
            '-r',
            '127.0.0.1',
            trEncryption,
          ],
          // Killed at once, it would leave its /tmp/tr_session_id_* file behind.
          { guard: true, stopGraceMs: STOP_GRACE_MS },
        );
        const remote = findExecutable('transmission-remote')!;
        const { execFile } = await import('node:child_process');
        const run = (...args: string[]) =>
          new Promise<string>((resolve) =>
            execFile(remote, [`127.0.0.1:${rpcPort}`, ...args], { timeout: 10_000 }, (e, so) =>
              resolve(e ? '' : so),
            ),
          );
        const until = async (what: string, ok: () => Promise<boolean>) => {
          for (const t0 = Date.now(); !(await ok());) {
            if (Date.now() - t0 > TIMEOUT_MS) throw new Error(`timed out waiting for ${what}`);
            await new Promise((r) => setTimeout(r, 500));
          }
        };
        await until('transmission RPC', async () => (await run('-l')) !== '');
        // Transmission 3.00 ignores x.pe: the tracker (which lists tdl only) leads it to tdl.
        const link = `magnet:?xt=urn:btih:${infoHashHex}&tr=${encodeURIComponent(tracker.url)}`;
        await run('-a', magnet ? link : torrent, '-w', out);
        await until('transmission to finish', async () =>
          (await run('-l')).split('\n').some((l) => /^\s*\d+\s+100%/.test(l)),
        );
        expect(await compareTrees(root, path.join(out, 'p.bin'))).toEqual([]);
      },
      TIMEOUT_MS + 60_000,
    );
});
