/**
 * What the CLI says about trackers: a torrent whose trackers tdl cannot use at all ends at once
 * with exit 4; every tracker failing is a warning as soon as it happens (the final error only
 * comes at `--timeout`); passkeys in tracker URLs stay out of `--json` events as out of text.
 */
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encode } from '../../src/metainfo/bencode.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { startHttpTracker } from '../helpers/fake-tracker.js';
import { startWebSeedServer } from '../helpers/web-seed-server.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';

const PIECE = 32768;
const data = randomBytesSeeded(64 * 1024, 'tracker-cli');
const PASSKEY_SEGMENT = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const PASSKEY = 'passkey=s3cr3tpasskey';

let dir: string;
let cleanup: () => Promise<void>;
const closers: (() => Promise<void> | void)[] = [];

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('tdl-tracker-cli-'));
});

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
  await cleanup();
});

async function writeTorrent(o: {
  announce?: string;
  announceList?: string[][];
  extraRoot?: Record<string, unknown>;
}) {
  const t = makeTorrent({ name: 'out.bin', pieceLength: PIECE, files: { data }, ...o });
  const tp = path.join(dir, 't.torrent');
  await writeFile(tp, t.torrent);
  return tp;
}

/** A tracker that always answers `failure reason`, whatever the path. */
async function refusingTracker(): Promise<string> {
  const t = await startHttpTracker({
    handler: (_req, res) => res.end(encode({ 'failure reason': 'unregistered torrent' })),
  });
  closers.push(() => t.close());
  return t.url.replace(/\/announce$/, '');
}

describe('trackers tdl cannot use', () => {
  it('only ws:, wss: and unknown schemes: exit 4 at once, saying why, nothing created', async () => {
    const tp = await writeTorrent({
      announce: 'wss://tracker.example/announce',
      announceList: [['wss://tracker.example/announce', 'ws://b.example/announce'], ['foo://x']],
    });
    const out = path.join(dir, 'out.bin');
    // With the 60 s timeout this test would time out if tdl waited for it.
    const r = await runCli(['download', tp, '-o', out, '--timeout', '60', '--no-dht']);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('no tracker tdl can use');
    expect(r.stderr).toContain('WebSocket');
    expect(r.stderr).toContain('unsupported scheme foo:');
    expect(r.stderr).toContain('--peer');
    expect(existsSync(`${out}.part`)).toBe(false);
    expect(existsSync(`${out}.tdl-resume`)).toBe(false);
  });

  it('--json: the same, as an error event', async () => {
    const tp = await writeTorrent({ announce: 'ws://tracker.example/announce' });
    const r = await runCli([
      'download',
      tp,
      '-o',
      path.join(dir, 'o'),
      '--json',
      '--timeout',
      '60',
      '--no-dht',
    ]);
    expect(r.code).toBe(4);
    expect(r.events.at(-1)).toMatchObject({ event: 'error', kind: 'no-peers', exitCode: 4 });
  });

  it('are not fatal when a web seed can serve the data', async () => {
    const seed = await startWebSeedServer({ files: { '/out.bin': data } });
    closers.push(() => seed.close());
    const tp = await writeTorrent({
      announce: 'wss://tracker.example/announce',
      extraRoot: { 'url-list': [`${seed.origin}/out.bin`] },
    });
    const out = path.join(dir, 'out.bin');
    const r = await runCli(['download', tp, '-o', out, '--timeout', '60', '--no-dht']);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
  });
});

describe('every tracker failing', () => {
  it('is a warning at once; the error comes at --timeout', async () => {
    const base = await refusingTracker();
    const tp = await writeTorrent({ announce: `${base}/announce` });
    const r = await runCli(['download', tp, '-o', path.join(dir, 'o'), '--timeout', '1.5']);
    expect(r.code).toBe(4);
    const lines = r.stderr.trimEnd().split('\n');
    const warned = lines.findIndex((l) => l.includes('the only tracker failed; still retrying'));
    expect(warned, r.stderr).toBeGreaterThanOrEqual(0);
    // The timeout as given (it was rounded: "within 2s").
    expect(lines.at(-1)).toMatch(/^tdl: no usable peer within 1\.5s/);
    expect(warned).toBeLessThan(lines.length - 1);
  });

  it('a UDP tracker that never answers is named at --timeout, before its retries end', async () => {
    const silent = createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => silent.close(() => resolve())));
    const url = `udp://127.0.0.1:${silent.address().port}/announce`;
    const tp = await writeTorrent({ announce: url });
    const args = ['-o', path.join(dir, 'o'), '--timeout', '1', '--no-dht'];
    const r = await runCli(['download', tp, ...args]);
    expect(r.code).toBe(4);
    expect(r.stderr.trimEnd().split('\n').at(-1)).toBe(
      `tdl: no usable peer within 1s (no peer addresses found; tracker ${url}: no answer yet)`,
    );
  });

  it('with several trackers, says how many', async () => {
    const base = await refusingTracker();
    const tp = await writeTorrent({
      announceList: [[`${base}/a`], [`${base}/b`, 'wss://skipped.example/announce']],
    });
    const r = await runCli(['download', tp, '-o', path.join(dir, 'o'), '--timeout', '1', '--json']);
    expect(r.code).toBe(4);
    const warnings = r.events.filter((e) => e['event'] === 'warning').map((e) => e['message']);
    expect(warnings).toContain('every tracker (2) failed; still retrying');
  });
});

describe('passkeys', () => {
  it('are redacted from --json warning and error events as from the text output', async () => {
    const base = await refusingTracker();
    const url = `${base}/${PASSKEY_SEGMENT}/announce?${PASSKEY}`;
    const tp = await writeTorrent({ announce: url });
    const json = await runCli([
      'download',
      tp,
      '-o',
      path.join(dir, 'o'),
      '--timeout',
      '1',
      '--json',
    ]);
    expect(json.code).toBe(4);
    const warning = json.events.find((e) => e['event'] === 'warning');
    const error = json.events.find((e) => e['event'] === 'error');
    expect(String(warning?.['message'])).toContain('unregistered torrent');
    expect(String(error?.['message'])).toContain('unregistered torrent');
    expect(String(error?.['message'])).toContain(`${base}/…/announce?…`);
    const text = await runCli(['download', tp, '-o', path.join(dir, 'o'), '--timeout', '1']);
    for (const out of [json.stdout, json.stderr, text.stdout, text.stderr]) {
      expect(out).not.toContain(PASSKEY_SEGMENT);
      expect(out).not.toContain('s3cr3t');
    }
  });
});
