/**
 * libtorrent (python3-libtorrent) downloads from our test web seed: the paths it asks for
 * must be the URLs fileUrl() builds for the same torrent (names with spaces, %, #, ?, +,
 * unicode). Skipped when the module is not installed (fails instead with CI=true).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import { fileUrl } from '../../src/webseed/url.js';
import { makeTorrent, randomBytesSeeded } from '../helpers/torrent.js';
import { startWebSeedServer, type WebSeedServer } from '../helpers/web-seed-server.js';

const PYTHON = '/usr/bin/python3';

function hasLibtorrent(): Promise<boolean> {
  if (!existsSync(PYTHON)) return Promise.resolve(false);
  return new Promise((resolve) => {
    execFile(PYTHON, ['-c', 'import libtorrent'], { timeout: 20_000 }, (err) => resolve(!err));
  });
}

// Downloads argv[1] into argv[2] from its web seeds only; exits 0 when finished.
const SCRIPT = `
import sys, time, libtorrent as lt
s = lt.session({'listen_interfaces': '127.0.0.1:0', 'enable_dht': False, 'enable_lsd': False,
                'enable_upnp': False, 'enable_natpmp': False, 'enable_outgoing_utp': False,
                'enable_incoming_utp': False})
p = lt.add_torrent_params()
p.ti = lt.torrent_info(sys.argv[1])
p.save_path = sys.argv[2]
h = s.add_torrent(p)
end = time.time() + 60
while time.time() < end:
    st = h.status()
    if st.is_seeding:
        sys.exit(0)
    for a in s.pop_alerts():
        if isinstance(a, lt.url_seed_alert):
            print('url seed alert', a.message(), file=sys.stderr)
    time.sleep(0.05)
sys.exit(2)
`;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((f) => f()));
});

const available = await hasLibtorrent();
if (!available && process.env['CI'] === 'true') {
  throw new Error('python3-libtorrent is missing (CI=true)');
}

describe.skipIf(!available)('libtorrent against our web seed URLs', () => {
  it('asks for exactly the paths fileUrl() builds', async () => {
    const names = [
      ['a b', 'x#1?.bin'],
      ['100% sure+.txt'],
      ['été', '日本語 ü.dat'],
      ["it's (1) [x] ~!*.bin"],
    ];
    const files = names.map((p, i) => ({
      path: p,
      data: randomBytesSeeded(20_000 + i * 777, `lt-${i}`),
    }));
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tdl-webseed-lt-'));
    cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));

    const byPath: Record<string, Buffer> = {};
    const server: WebSeedServer = await startWebSeedServer({ files: byPath, decodePaths: true });
    cleanups.push(() => server.close());
    const base = `${server.origin}/seed`;
    const t = makeTorrent({
      name: 'my torrent',
      pieceLength: 16384,
      files,
      extraRoot: { 'url-list': [base] },
    });
    const meta = parseTorrent(t.torrent);
    const ours = meta.files.map((f) => new URL(fileUrl(base, meta, f.path)).pathname);
    meta.files.forEach((f, i) => (byPath[decodeURIComponent(ours[i]!)] = files[i]!.data));

    const torrentPath = path.join(dir, 'x.torrent');
    await fs.writeFile(torrentPath, t.torrent);
    const out = path.join(dir, 'out');
    await fs.mkdir(out);
    const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(PYTHON, ['-c', SCRIPT, torrentPath, out], { timeout: 90_000 }, (err, _o, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      );
    });
    const asked = [...new Set(server.requests.map((r) => r.path))].sort();
    expect(result.code, result.stderr).toBe(0);
    for (const [i, f] of files.entries()) {
      const got = await fs.readFile(path.join(out, 'my torrent', ...f.path));
      expect(got.equals(f.data), names[i]!.join('/')).toBe(true);
    }
    // libtorrent writes hex in lower case and leaves !*'() unencoded; the same names.
    expect(asked.map((p) => decodeURIComponent(p)).sort()).toEqual(
      ours.map((p) => decodeURIComponent(p)).sort(),
    );
  });
});
