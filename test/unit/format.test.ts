import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  displayWidth,
  escapeControl,
  printable,
  formatBytes,
  formatPartBytes,
  formatDuration,
  redactUrls,
  terminalColumns,
  truncateToWidth,
} from '../../src/cli/format.js';
import {
  checkLine,
  metadataLine,
  progressLine,
  seedLine,
  seedSummaryLine,
  summaryLine,
} from '../../src/cli/progress.js';
import type { DownloadStats } from '../../src/swarm/download-api.js';

describe('terminal text', () => {
  it('escapes control characters from torrents and trackers', () => {
    expect(escapeControl('a\x1b[31mb\nc\x07')).toBe('a\\x1b[31mb\\nc\\x07');
    expect(escapeControl('plain é 名')).toBe('plain é 名');
  });

  it('escapes bidi marks and invisible characters, keeps the joiners that shape text', () => {
    expect(escapeControl('a\u200eb\u200fc\u061cd')).toBe('a\\u200eb\\u200fc\\u061cd');
    expect(escapeControl('a\u202eb\u2067c')).toBe('a\\u202eb\\u2067c');
    expect(escapeControl('a\u200bb\u2060c\ufeffd')).toBe('a\\u200bb\\u2060c\\ufeffd');
    const family = '\u{1f468}\u200d\u{1f469}\u200d\u{1f467}';
    expect(escapeControl(family)).toBe(family);
    expect(escapeControl('\u0645\u06cc\u200c\u062e\u0648\u0627\u0645')).toBe(
      '\u0645\u06cc\u200c\u062e\u0648\u0627\u0645',
    );
  });

  it('printable: passkeys hidden and controls escaped, as every message shows them', () => {
    expect(printable('tracker http://t.example/a?passkey=s3cret: go\x1b[2J away\u202e')).toBe(
      'tracker http://t.example/a?…: go\\x1b[2J away\\u202e',
    );
  });

  it('hides passkeys in printed tracker URLs', () => {
    expect(redactUrls('tracker http://t.example/announce?passkey=s3cret&x=1: timed out')).toBe(
      'tracker http://t.example/announce?…: timed out',
    );
    expect(redactUrls('https://t.example/0123456789abcdef0123/announce failed')).toBe(
      'https://t.example/…/announce failed',
    );
    expect(redactUrls('udp://tracker.example:6969/announce')).toBe(
      'udp://tracker.example:6969/announce',
    );
    expect(redactUrls('cannot fetch http://user:s3cret@h.example/x.torrent: refused')).toBe(
      'cannot fetch http://…@h.example/x.torrent: refused',
    );
    expect(redactUrls('no url here')).toBe('no url here');
  });

  it('hides passkeys in URLs of any scheme, and leaves magnet links as they are', () => {
    expect(
      redactUrls(
        'no tracker tdl can use: wss://tracker.example/0f1e2d3c4b5a69788796a5b4c3d2e1f0/announce?passkey=s3cr3tpasskey (WebSocket (WebTorrent) trackers are not supported)',
      ),
    ).toBe(
      'no tracker tdl can use: wss://tracker.example/…/announce?… (WebSocket (WebTorrent) trackers are not supported)',
    );
    expect(redactUrls('ws://user:s3cret@t.example/announce; foo+bar.x-1://h/p?k=v, x')).toBe(
      'ws://…@t.example/announce; foo+bar.x-1://h/p?…, x',
    );
    expect(redactUrls('tracker WSS://T.example/announce?key=1: refused')).toBe(
      'tracker WSS://T.example/announce?…: refused',
    );
    // Right after other text too.
    expect(redactUrls('(1wss://h/?k) x.udp://h/0123456789abcdef0123')).toBe(
      '(1wss://h/?…) x.udp://h/…',
    );
    const magnet =
      'magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=A+Name&tr=wss%3A%2F%2Ft.example%2Fannounce';
    expect(redactUrls(`bad link ${magnet}: no`)).toBe(`bad link ${magnet}: no`);
    expect(
      redactUrls('urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a C:\\dir mailto:a@b.example'),
    ).toBe('urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a C:\\dir mailto:a@b.example');
    // A megabyte of text that could begin a scheme: no quadratic scan.
    const long = 'a'.repeat(1 << 20);
    expect(redactUrls(`${long} ${long}://h/?k`)).toBe(`${long} ${long}://h/?…`);
  });

  it('formats sizes and durations', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(256 * 1024 * 1024)).toBe('256 MiB');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    // Just under a unit: never "1024 KiB", which rounding to a whole number would give.
    expect(formatBytes(1024 * 1024 - 1)).toBe('1.00 MiB');
    expect(formatBytes(1024 * 1024 - 512)).toBe('1.00 MiB');
    expect(formatBytes(1024 * 1024 - 1024)).toBe('1023 KiB');
    expect(formatBytes(1024 ** 3 - 1)).toBe('1.00 GiB');
    expect(formatBytes(1024)).toBe('1.00 KiB');
    expect(formatBytes(1023)).toBe('1023 B');
    // A part short of its whole never reads as the whole: rounded down, in the whole's unit.
    const MiB = 1024 * 1024;
    expect(formatPartBytes(60 * MiB - 128, 60 * MiB)).toBe('59.9 MiB');
    expect(formatPartBytes(1024 ** 3 - 256 * 1024, 1024 ** 3)).toBe('0.99 GiB');
    expect(formatPartBytes(256 * MiB - 1, 256 * MiB)).toBe('255 MiB');
    expect(formatPartBytes(1023, 1024)).toBe('1023 B');
    expect(formatPartBytes(30 * MiB, 60 * MiB)).toBe('30.0 MiB');
    expect(formatPartBytes(60 * MiB, 60 * MiB)).toBe('60.0 MiB');
    expect(formatDuration(61_000)).toBe('01:01');
    expect(formatDuration(3_725_000)).toBe('1:02:05');
    expect(formatDuration(Infinity)).toBe('--:--');
  });
});

describe('terminal width', () => {
  it('is 80 columns when the terminal reports none or 0 (an unsized pseudo-terminal)', () => {
    expect(terminalColumns({ columns: 132 })).toBe(132);
    expect(terminalColumns({})).toBe(80);
    expect(terminalColumns({ columns: 0 })).toBe(80);
    expect(terminalColumns({ columns: Number.NaN })).toBe(80);
  });
});

describe('display width', () => {
  it('counts terminal columns, not UTF-16 units', () => {
    expect(displayWidth('abc')).toBe(3);
    expect(displayWidth('名前')).toBe(4); // CJK: 2 each
    expect(displayWidth('한국어')).toBe(6); // Hangul syllables
    expect(displayWidth('ｆｕｌｌ')).toBe(8); // fullwidth forms
    expect(displayWidth('😀')).toBe(2); // one code point, two UTF-16 units
    expect(displayWidth('👩‍👩‍👧‍👦')).toBe(2); // ZWJ sequence: one glyph
    expect(displayWidth('🇯🇵')).toBe(2); // flag: two regional indicators
    expect(displayWidth('❤️')).toBe(2); // text-default symbol with VS16
    expect(displayWidth('❤')).toBe(1); // ...and without
    expect(displayWidth('1️⃣')).toBe(2); // keycap
    expect(displayWidth('e\u0301')).toBe(1); // combining accent: 0
    expect(displayWidth('a\u200bb')).toBe(8); // a zero-width space is shown escaped: a\u200bb
    expect(displayWidth('')).toBe(0);
  });

  it('counts control characters as the escapes that are printed for them', () => {
    expect(displayWidth('a\x1bb')).toBe(6); // a\x1bb
    expect(displayWidth('\n')).toBe(2);
    expect(displayWidth('\u202e')).toBe(6);
    expect(displayWidth('\r\n')).toBe(4); // one grapheme cluster, two escapes
  });

  it('cuts by columns, never inside a wide character, a cluster or an escape', () => {
    expect(truncateToWidth('abcdef', 4)).toBe('abcd');
    expect(truncateToWidth('名前名前', 5)).toBe('名前'); // the third would straddle the edge
    expect(truncateToWidth('ab😀cd', 3)).toBe('ab');
    expect(truncateToWidth('ab😀cd', 4)).toBe('ab😀');
    expect(truncateToWidth('e\u0301e\u0301e\u0301', 2)).toBe('e\u0301e\u0301');
    expect(truncateToWidth('👩‍👩‍👧‍👦x', 1)).toBe('');
    expect(truncateToWidth('a\x1bb', 3)).toBe('a'); // not a cut-off "\x"
    expect(truncateToWidth('a\x1bb', 5)).toBe('a\\x1b');
    expect(truncateToWidth('short', 80)).toBe('short');
    expect(truncateToWidth('abc', 0)).toBe('');
  });

  it('properties: the cut fits, is a prefix of the escaped text, and is the longest that fits', () => {
    const seed = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : 7;
    const text = fc.string({
      unit: fc.oneof(
        fc.constantFrom(
          'a',
          'é',
          'e\u0301',
          '名',
          '한',
          '😀',
          '👩‍👧',
          '🇯🇵',
          '❤️',
          '\x1b',
          '\n',
          '\u202e',
        ),
        fc.string({ unit: 'binary', maxLength: 2 }),
      ),
      maxLength: 40,
    });
    fc.assert(
      fc.property(text, fc.nat(100), (s, n) => {
        const cut = truncateToWidth(s, n);
        const full = truncateToWidth(s, Infinity);
        expect(full).toBe(escapeControl(s));
        expect(full.startsWith(cut)).toBe(true);
        expect(displayWidth(cut)).toBeLessThanOrEqual(n);
        if (cut.length < full.length) {
          // The next cluster (at most 6 columns: an escape) would not have fitted.
          let k = n + 1;
          while (truncateToWidth(s, k) === cut) k++;
          expect(k - n).toBeLessThanOrEqual(6);
          expect(displayWidth(truncateToWidth(s, k))).toBeGreaterThan(n);
        }
        expect(displayWidth(s)).toBe(displayWidth(full));
      }),
      { seed, numRuns: 300 },
    );
  });

  it('the percent is rounded down: 100.0% only once every byte is there', () => {
    const s = {
      total: 1_000_000_000,
      completed: 999_999_000,
      initial: 0,
      rate: 0,
      uploaded: 0,
      uploadRate: 0,
      served: 0,
      connected: 1,
      active: 1,
    } as DownloadStats;
    expect(progressLine(s, 'x', 200)).toContain(' 99.9%  ');
    expect(progressLine({ ...s, completed: s.total }, 'x', 200)).toContain(' 100.0%  ');
    // Every byte in: the final writes and names follow, not an ETA of 00:00.
    expect(progressLine({ ...s, completed: s.total }, 'x', 200)).toMatch(/ {2}finishing {2}x$/);
    expect(progressLine(s, 'x', 200)).toContain('  ETA ');
    expect(progressLine({ ...s, initial: 999_999_999 }, 'x', 200)).toContain('(from 99.9%)');
  });

  it('a narrow terminal drops the upload figures and peers before the ETA and the name', () => {
    const s = {
      total: 8_000_000,
      completed: 3_000_000,
      initial: 0,
      rate: 3 * 1048576,
      uploaded: 0,
      uploadRate: 0,
      served: 1,
      connected: 3,
      active: 2,
    } as DownloadStats;
    const name = 'ubuntu-24.04.1-desktop-amd64.iso';
    const wide = progressLine(s, name, 200);
    expect(wide).toBe(
      '[#########---------------]  37.5%  2.86 MiB/7.63 MiB  3.00 MiB/s  up 0 B/s ratio 0.00  ' +
        `peers 2/3  serving 1  ETA 00:02  ${name}`,
    );
    const normal = progressLine(s, name, 80);
    expect(normal).toBe(
      '[####--------]  37.5%  2.86 MiB/7.63 MiB  3.00 MiB/s  ETA 00:02  ubuntu-24.04.1',
    );
    expect(progressLine(s, name, 100)).toContain('peers 2/3  ETA 00:02  ubuntu-24.04.1-desktop');
    expect(progressLine(s, name, 60)).toMatch(
      /^37\.5%  2\.86 MiB\/7\.63 MiB  3\.00 MiB\/s  ETA 00:02  ubuntu/,
    );
    // Narrower than the fixed fields and 8 columns of the name: whole ones go from the end,
    // never cut inside ("ETA 00"), rather than leave a name of a letter or two.
    expect(progressLine(s, name, 50)).toBe('37.5%  2.86 MiB/7.63 MiB  3.00 MiB/s  ubuntu-24.0');
    expect(progressLine(s, name, 45)).toBe('37.5%  2.86 MiB/7.63 MiB  ubuntu-24.04.1-des');
    expect(progressLine(s, name, 30)).toBe('37.5%  ubuntu-24.04.1-desktop');
    expect(progressLine(s, name, 12)).toBe('37.5%  ubun');
    // A short name needs no more than its own width.
    expect(progressLine(s, 'a.iso', 45)).toBe('37.5%  2.86 MiB/7.63 MiB  3.00 MiB/s  a.iso');
    // With a DHT: its nodes and the peers it found, the first figures to go when narrow.
    const dht = { ...s, dht: { nodes: 143, peers: 12 } };
    expect(progressLine(dht, name, 200)).toContain('serving 1  dht 143/12  ETA 00:02');
    expect(progressLine(dht, name, 80)).toBe(normal);
    expect(progressLine(dht, name, 140)).not.toContain('dht');
  });

  it("the seeded line: what seeding sent, after a download the run's total beside it", () => {
    const s = stats({ uploaded: 1536, elapsedMs: 6000 });
    expect(seedSummaryLine(s, '/d/x')).toBe(
      'seeded: 1.50 KiB uploaded (ratio 1.54) in 6.0 s from /d/x',
    );
    expect(seedSummaryLine(s, '/d/x', 1024)).toBe(
      'seeded: 512 B uploaded in 6.0 s (1.50 KiB in all, ratio 1.54) from /d/x',
    );
  });

  it('a name cut at the edge is never cut inside one of its escapes', () => {
    const s = stats();
    const name = 'a\u200bb'.repeat(30);
    for (let columns = 40; columns <= 90; columns++) {
      for (const line of [
        progressLine(s, name, columns),
        seedLine(s, name, columns),
        checkLine(500, 1000, 500, name, columns),
        metadataLine({ withMetadata: 0, connected: 1, known: 2, name }, columns),
      ]) {
        expect(line).not.toMatch(/\\(u[0-9a-f]{0,3}|x[0-9a-f]?)$/);
        expect(line).not.toMatch(/\u200b/);
        expect(displayWidth(line)).toBeLessThanOrEqual(columns - 1);
      }
    }
  });

  it('the seeding and checking lines drop whole fields on a narrow terminal, never cut one', () => {
    const s = stats({ uploaded: 5_000_000, uploadRate: 1_000_000, connected: 3, served: 1 });
    for (let columns = 12; columns <= 100; columns++) {
      const seeding = seedLine(s, 'name.bin', columns);
      const checking = checkLine(92e6, 286e6, 92e6, 'name.bin', columns);
      for (const [line, whole] of [
        [
          seeding,
          ['seeding', 'up 977 KiB/s', '4.77 MiB sent', 'ratio 5000.00', 'peers 3 serving 1'],
        ],
        [checking, ['32.1%', 'checking 87.7 MiB/273 MiB', 'valid 87.7 MiB']],
      ] as const) {
        expect(displayWidth(line)).toBeLessThanOrEqual(columns - 1);
        const fields = line.split('  ');
        // The name, last, may be cut; every other field is whole (the bar aside).
        for (const f of fields.slice(0, -1).filter((f) => !/^\[[#-]+\]$/.test(f))) {
          expect(whole, `${columns}: ${line}`).toContain(f.trim());
        }
        const last = fields.at(-1)!;
        if (!(whole as readonly string[]).includes(last.trim())) {
          expect('name.bin'.startsWith(last.replace(/…$/, '')), `${columns}: ${line}`).toBe(true);
        }
      }
    }
  });

  it('the progress line fits the terminal with a CJK or emoji name', () => {
    const s = stats();
    for (const name of ['名前'.repeat(40), '😀'.repeat(40), 'e\u0301'.repeat(80), 'x'.repeat(90)]) {
      for (const columns of [40, 80, 81, 120]) {
        const line = progressLine(s, name, columns);
        expect(displayWidth(line)).toBeLessThanOrEqual(columns - 1);
        expect(displayWidth(line)).toBeGreaterThanOrEqual(columns - 2);
      }
    }
  });
});

/** Half of a 1000-byte download at 100 B/s from one peer, with `over` on top. */
function stats(over: Partial<DownloadStats> = {}): DownloadStats {
  return {
    total: 1000,
    completed: 500,
    initial: 0,
    downloaded: 500,
    wasted: 0,
    wastedBy: { hashFailed: 0, duplicate: 0, afterCancel: 0, webSeed: 0 },
    piecesDone: 1,
    pieceCount: 2,
    rate: 100,
    uploaded: 0,
    uploadRate: 0,
    served: 0,
    firstUnchokeMs: -1,
    heldBytes: 0,
    budgetBytes: 0,
    connected: 1,
    active: 1,
    peersUsed: 1,
    fromWebSeeds: 0,
    piecesReplaced: 0,
    elapsedMs: 1000,
    ...over,
  };
}

describe('summaryLine', () => {
  it('says why bytes were wasted, web seeds included', () => {
    const s = stats({
      total: 4 * 1048576,
      completed: 4 * 1048576,
      downloaded: 4 * 1048576,
      wasted: 3 * 16384 + 100_000,
      wastedBy: { hashFailed: 0, duplicate: 2 * 16384, afterCancel: 16384, webSeed: 100_000 },
      piecesDone: 16,
      pieceCount: 16,
      active: 0,
      elapsedMs: 2000,
    });
    const line = summaryLine(s, 'out');
    expect(line).toMatch(
      /wasted \(32(\.0)? KiB endgame duplicates, 16(\.0)? KiB after cancel, 97\.\d KiB from web seeds\)/,
    );
    expect(line).not.toContain('failed hash');
    expect(line).not.toContain('of it from web seeds');
  });

  it('says how much of the download web seeds sent', () => {
    const s = stats({ total: 4 * 1048576, downloaded: 4 * 1048576, fromWebSeeds: 3 * 1048576 });
    expect(summaryLine(s, 'out')).toMatch(/, 1 peer used, 3(\.00)? MiB of it from web seeds/);
  });
});

describe('metadataLine', () => {
  const p = { withMetadata: 1, connected: 3, known: 12, dhtNodes: 140, name: 'example.iso' };
  it('fits the terminal by dropping whole fields, keeping the name, never cutting a field', () => {
    expect(metadataLine(p, 120)).toBe(
      'fetching metadata from 1 of 3 peers (12 known, dht 140 nodes)  example.iso',
    );
    expect(metadataLine(p, 70)).toBe('fetching metadata from 1 of 3 peers (12 known)  example.iso');
    expect(metadataLine(p, 55)).toBe('fetching metadata from 1 of 3 peers  example.iso');
    expect(metadataLine(p, 40)).toBe('metadata from 1/3 peers  example.iso');
    // The name is cut last, then goes: no field is cut in its middle.
    const long = { ...p, name: 'a-very-long-name-of-a-torrent.iso' };
    expect(metadataLine(long, 45)).toBe('metadata from 1/3 peers  a-very-long-name-of');
    expect(metadataLine({ ...p, name: undefined }, 40)).toBe('fetching metadata from 1 of 3 peers');
    expect(metadataLine({ ...p, name: undefined }, 30)).toBe('metadata from 1/3 peers');
    for (const columns of [10, 20, 30, 40, 50, 60, 80, 200]) {
      for (const q of [p, long, { ...p, name: undefined }, { ...p, dhtNodes: undefined }]) {
        expect(displayWidth(metadataLine(q, columns))).toBeLessThanOrEqual(columns - 1);
      }
    }
  });
});
