/**
 * Trackers tdl cannot use (ws:, wss:, udp: without a port) as a run's only source of peers: a
 * magnet link ends at once with exit 4, as a .torrent does, and passkeys in such URLs stay out of
 * what is printed.
 */
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../helpers/cli.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const INFO_HASH = 'c12fe1c06bba254a9dc9f519b335aa7c1367a88a';
/** Far below the --timeout given (30 s), far above what refusing at once takes. */
const AT_ONCE_MS = 15_000;
const PASSKEY_SEGMENT = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const PASSKEY = 's3cr3tpasskey';

let dir: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-tracker-unusable-'));
});

afterEach(async () => {
  await cleanup();
});

describe('a magnet link whose only trackers are WebSocket ones, with the DHT off', () => {
  const link = `magnet:?xt=urn:btih:${INFO_HASH}&tr=${encodeURIComponent('wss://tracker.example/announce')}`;

  it('download: exit 4 at once, naming the tracker and why, nothing created', async () => {
    const out = path.join(dir, 'out');
    const started = Date.now();
    const r = await runCli(['download', link, '-o', out, '--no-dht', '--timeout', '30']);
    expect(Date.now() - started).toBeLessThan(AT_ONCE_MS);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain('no tracker tdl can use: wss://tracker.example/announce');
    expect(r.stderr).toContain('WebSocket');
    expect(r.stderr).toContain('--peer');
    expect(await readdir(dir)).toEqual([]);
  }, 60_000);

  it('info, --json: the same, as an error event', async () => {
    const started = Date.now();
    const r = await runCli(['info', link, '--no-dht', '--timeout', '30', '--json']);
    expect(Date.now() - started).toBeLessThan(AT_ONCE_MS);
    expect(r.code).toBe(4);
    expect(r.events.at(-1)).toMatchObject({ event: 'error', kind: 'no-peers', exitCode: 4 });
    expect(String(r.events.at(-1)?.['message'])).toContain('WebSocket');
  }, 60_000);
});

describe('a UDP tracker URL without a port', () => {
  it('can never be announced to: exit 4 at once, naming why', async () => {
    const link =
      `magnet:?xt=urn:btih:${INFO_HASH}&tr=${encodeURIComponent('udp://127.0.0.1/announce')}` +
      `&tr=${encodeURIComponent('wss://tracker.example/announce')}`;
    const started = Date.now();
    const r = await runCli(['info', link, '--no-dht', '--timeout', '30']);
    expect(Date.now() - started).toBeLessThan(AT_ONCE_MS);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain('udp://127.0.0.1/announce (a UDP tracker URL needs a port');
  }, 60_000);
});

describe('a UDP tracker URL whose path and query no datagram holds', () => {
  it('can never be announced to: exit 4 at once, naming why', async () => {
    const long = `udp://127.0.0.1:9/announce?x=${'y'.repeat(1100)}`;
    const link = `magnet:?xt=urn:btih:${INFO_HASH}&tr=${encodeURIComponent(long)}`;
    const started = Date.now();
    const r = await runCli(['info', link, '--no-dht', '--timeout', '30']);
    expect(Date.now() - started).toBeLessThan(AT_ONCE_MS);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(
      'its path and query are too long for a UDP announce: 1112 bytes, at most 1024',
    );
  }, 60_000);
});

describe('a tracker URL with a newline or a tab in it', () => {
  it('is not announced to under another URL: exit 4 at once, naming why', async () => {
    const bad = 'http://127.0.0.1:9/ann\nounce\tx';
    const link = `magnet:?xt=urn:btih:${INFO_HASH}&tr=${encodeURIComponent(bad)}`;
    const r = await runCli(['info', link, '--no-dht', '--timeout', '30']);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain('white space or control characters');
  }, 60_000);
});

describe('passkeys in WebSocket tracker URLs', () => {
  it('stay out of the exit-4 error, in text and in --json', async () => {
    const url = `wss://tracker.example/${PASSKEY_SEGMENT}/announce?passkey=${PASSKEY}`;
    const t = makeTorrent({
      name: 'out.bin',
      pieceLength: 32768,
      files: { data: randomBytesSeeded(40_000, 'tracker-unusable') },
      announce: url,
    });
    const tp = path.join(dir, 't.torrent');
    await writeFile(tp, t.torrent);
    const args = ['download', tp, '-o', path.join(dir, 'out.bin'), '--no-dht', '--timeout', '30'];
    const text = await runCli(args);
    const json = await runCli([...args, '--json']);
    expect(text.code).toBe(4);
    expect(json.code).toBe(4);
    expect(text.stderr).toContain('no tracker tdl can use: wss://tracker.example/…/announce?…');
    const error = json.events.find((e) => e['event'] === 'error');
    expect(String(error?.['message'])).toContain('wss://tracker.example/…/announce?…');
    for (const out of [text.stdout, text.stderr, json.stdout, json.stderr]) {
      expect(out).not.toContain(PASSKEY_SEGMENT);
      expect(out).not.toContain(PASSKEY);
    }
  });
});
