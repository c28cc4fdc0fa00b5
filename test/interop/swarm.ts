/**
 * Shared set-up of the interop tests: which real programs are needed, the payloads, and one tdl
 * download checked the way a user would (exit code 0, the same bytes on disk as the source).
 */
import path from 'node:path';
import { expect } from 'vitest';
import {
  assertTdlOk,
  compareTrees,
  createTorrent,
  makePayload,
  makeTempDir,
  missingPrograms,
  removeTempDir,
  tdlDownload,
  type PayloadSpec,
  type TdlRun,
  type Tracker,
} from '../../scripts/lib/real-peers.mjs';

/** Bound on one tdl download in these tests (a few MiB on loopback take well under a second). */
export const DOWNLOAD_TIMEOUT_MS = 20_000;
/** vitest's bound on one test: the download plus checking the bytes. */
export const TEST_TIMEOUT_MS = DOWNLOAD_TIMEOUT_MS + 15_000;
/** Bound on each program's start-up (shorter than the set-up's, so its own error shows). */
export const START_TIMEOUT_MS = 15_000;
/** vitest's bound on a file's set-up: payloads, tracker and seeders. */
export const SETUP_TIMEOUT_MS = 60_000;
export const PIECE_LENGTH = 256 * 1024;

export const SINGLE_FILE: PayloadSpec = { name: 'single.bin', size: 8 * 1024 * 1024 };

/** About 6 MiB in files of odd sizes, so that pieces of 256 KiB cross file boundaries. */
export const MULTI_FILE: PayloadSpec = {
  name: 'multi',
  files: [
    { path: ['readme.txt'], size: 1_000 },
    { path: ['a', 'one.bin'], size: 1_500_001 },
    { path: ['a', 'two.bin'], size: 2_109_497 },
    { path: ['b', 'c', 'three.bin'], size: 777_777 },
    { path: ['four.bin'], size: 1_903_291 },
  ],
};

/**
 * Decide what to do when a real program is missing: in CI (`CI=true`) the tests fail with the
 * Debian packages to install; elsewhere they are skipped with a warning.
 */
export function programsGate(names: string[]): { skip: boolean; assertPresent: () => void } {
  const missing = missingPrograms(names);
  const packages = [...new Set(missing.map((m) => m.pkg))].join(' ');
  const message =
    missing.length === 0
      ? ''
      : `missing ${missing.map((m) => `${m.name} (Debian package ${m.pkg})`).join(', ')}; ` +
        `install with: apt-get install -y ${packages}`;
  const ci = process.env.CI === 'true';
  if (missing.length > 0 && !ci) console.warn(`interop tests skipped: ${message}`);
  return {
    skip: missing.length > 0 && !ci,
    assertPresent: () => {
      if (missing.length > 0) throw new Error(message);
    },
  };
}

export interface Payload {
  /** the payload's root: a file or a folder named like the torrent */
  root: string;
  /** the folder that holds root (a seeder's data folder) */
  dataDir: string;
  name: string;
  /** .torrent announcing to the tracker's HTTP URL */
  httpTorrent: string;
  /** the same info dictionary announcing to the tracker's UDP URL */
  udpTorrent: string;
  infoHashHex: string;
}

/** Write a payload and make two torrents of it, one per announce URL of the tracker. */
export async function preparePayload(
  workDir: string,
  spec: PayloadSpec,
  tracker: Tracker,
): Promise<Payload> {
  const dataDir = path.join(workDir, `${spec.name}-data`);
  const root = await makePayload(dataDir, spec);
  const http = await createTorrent({
    source: root,
    out: path.join(workDir, `${spec.name}.http.torrent`),
    pieceLength: PIECE_LENGTH,
    trackers: [[tracker.httpUrl]],
  });
  const udp = await createTorrent({
    source: root,
    out: path.join(workDir, `${spec.name}.udp.torrent`),
    pieceLength: PIECE_LENGTH,
    trackers: [[tracker.udpUrl]],
  });
  // The announce URL is outside the info dictionary: both torrents are the same swarm.
  expect(udp.infoHashHex).toBe(http.infoHashHex);
  await tracker.addInfoHash(http.infoHashHex);
  return {
    root,
    dataDir,
    name: spec.name,
    httpTorrent: http.path,
    udpTorrent: udp.path,
    infoHashHex: http.infoHashHex,
  };
}

/**
 * Download `torrent` with tdl into a fresh folder (`-o DIR`, so the payload lands in DIR/name)
 * and check the exit code and every byte against the source.
 */
export async function downloadAndCheck(
  payload: Payload,
  torrent: string,
  opts: { maxPeers?: number; timeoutMs?: number; args?: string[] } = {},
): Promise<TdlRun> {
  const out = await makeTempDir('tdl-interop-out-');
  try {
    const run = await tdlDownload({
      torrent,
      out,
      timeoutMs: opts.timeoutMs ?? DOWNLOAD_TIMEOUT_MS,
      ...(opts.maxPeers !== undefined ? { maxPeers: opts.maxPeers } : {}),
      ...(opts.args !== undefined ? { args: opts.args } : {}),
    });
    assertTdlOk(run);
    expect(run.code).toBe(0);
    expect(await compareTrees(payload.root, path.join(out, payload.name))).toEqual([]);
    return run;
  } finally {
    await removeTempDir(out);
  }
}
