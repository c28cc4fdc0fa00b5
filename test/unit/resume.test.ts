/**
 * The resume file codec, and the start-up decision built on it: what is believed, what is
 * re-hashed.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JOURNAL_SLACK_NS, planStartup } from '../../src/storage/check.js';
import type { FileStamp } from '../../src/storage/stamps.js';
import { Layout } from '../../src/storage/layout.js';
import {
  checkpointSize,
  decodeResume,
  encodeJournalEntry,
  encodeResume,
  resumeMismatch,
  RESUME_HEADER_BYTES,
  stampAt,
  StampTable,
  type ResumeState,
} from '../../src/storage/resume.js';

/** Every stamp of a list or table, as objects. */
function allStamps(list: ResumeState['files']) {
  return Array.from({ length: list.length }, (_, i) => stampAt(list, i));
}
import { Bitfield } from '../../src/wire/bitfield.js';

function state(o: Partial<ResumeState> = {}): ResumeState {
  const pieceCount = o.pieceCount ?? 13;
  const have = o.have ?? new Bitfield(pieceCount);
  if (!o.have) for (const i of [0, 3, 7, 12]) have.set(i);
  return {
    infoHash: createHash('sha1').update('torrent').digest(),
    pieceLength: 16384,
    totalLength: 16384 * 12 + 100,
    pieceCount,
    files: [
      { size: 100_000, mtimeNs: 1_700_000_000_123_456_789n, ino: 42n },
      { size: 96_708, mtimeNs: 1n, ino: (1n << 63n) + 5n },
    ],
    have,
    ...o,
  };
}

function decodeOk(buf: Buffer) {
  const d = decodeResume(buf);
  if (!d.ok) throw new Error(`decode failed: ${d.reason}`);
  return d;
}

describe('resume codec', () => {
  it('round-trips every field', () => {
    const s = state();
    const d = decodeOk(encodeResume(s));
    expect(d.state.infoHash.equals(s.infoHash)).toBe(true);
    expect(d.state.pieceLength).toBe(s.pieceLength);
    expect(d.state.totalLength).toBe(s.totalLength);
    expect(d.state.pieceCount).toBe(13);
    expect(d.state.files).toBeInstanceOf(StampTable);
    expect(allStamps(d.state.files)).toEqual(s.files);
    expect(d.state.have.toBuffer().equals(s.have.toBuffer())).toBe(true);
    expect(d.journal).toEqual([]);
    expect(d.checkpointBytes).toBe(checkpointSize(13, 2));
  });

  it('writes no flags, and still loads a file from an older tdl that set the orderly-exit flag', () => {
    const s = state();
    const buf = encodeResume(s);
    expect(buf.readUInt16BE(10)).toBe(0);
    // The old flag sat inside the checksummed header: rebuild the checksum as an old tdl did.
    buf.writeUInt16BE(1, 10);
    const sumAt = checkpointSize(13, 2) - 20;
    createHash('sha1').update(buf.subarray(0, sumAt)).digest().copy(buf, sumAt);
    const d = decodeOk(buf);
    expect(d.state.have.toBuffer().equals(s.have.toBuffer())).toBe(true);
  });

  it('reads the journal after the checkpoint: in order, deduplicated, out-of-range dropped', () => {
    const s = state();
    const buf = Buffer.concat([
      encodeResume(s, [5, 2]),
      encodeJournalEntry(9),
      encodeJournalEntry(5),
      encodeJournalEntry(13), // past the last piece
      encodeJournalEntry(0xffffffff),
      encodeJournalEntry(1),
    ]);
    expect(decodeOk(buf).journal).toEqual([5, 2, 9, 1]);
  });

  it('ignores a torn last journal entry', () => {
    const buf = Buffer.concat([encodeResume(state(), [4]), encodeJournalEntry(6).subarray(0, 3)]);
    expect(decodeOk(buf).journal).toEqual([4]);
  });

  it('rejects every truncation of the checkpoint', () => {
    const buf = encodeResume(state());
    for (let n = 0; n < buf.length; n++) {
      const d = decodeResume(buf.subarray(0, n));
      expect(d.ok, `accepted ${n} of ${buf.length} bytes`).toBe(false);
    }
  });

  it('rejects any single flipped bit in the checkpoint', () => {
    const buf = encodeResume(state());
    for (let i = 0; i < buf.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const b = Buffer.from(buf);
        b[i] = b[i]! ^ bit;
        expect(decodeResume(b).ok, `byte ${i} bit ${bit}`).toBe(false);
      }
    }
  });

  it('says why: magic, version, checksum, shape', () => {
    const buf = encodeResume(state());
    const notOurs = Buffer.from(buf);
    notOurs.write('XXXX', 0, 'latin1');
    expect(decodeResume(notOurs)).toEqual({ ok: false, reason: 'not a resume file' });
    const v2 = Buffer.from(buf);
    v2.writeUInt16BE(2, 8);
    expect(decodeResume(v2)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/version 2/),
    });
    const sum = Buffer.from(buf);
    sum[sum.length - 1] = sum[sum.length - 1]! ^ 1;
    expect(decodeResume(sum)).toMatchObject({ ok: false, reason: 'checksum mismatch' });
    expect(decodeResume(Buffer.from('hello'))).toMatchObject({ ok: false });
    expect(decodeResume(Buffer.alloc(0))).toMatchObject({ ok: false });
  });

  it('rejects a header whose counts do not fit, even with a valid checksum', () => {
    const buf = encodeResume(state());
    const b = Buffer.from(buf.subarray(0, buf.length - 20));
    b.writeUInt32BE(14, 48); // piece count no longer ceil(total / piece length)
    const fixed = Buffer.concat([b, createHash('sha1').update(b).digest()]);
    expect(decodeResume(fixed)).toMatchObject({ ok: false, reason: 'piece count does not fit' });
  });

  it('rejects spare bitfield bits set past the last piece', () => {
    const s = state();
    const buf = encodeResume(s);
    const at = RESUME_HEADER_BYTES + 24 * s.files.length + 1; // second bitfield byte
    const b = Buffer.from(buf.subarray(0, buf.length - 20));
    b[at] = b[at]! | 0x01; // bit 15: past piece 12
    const fixed = Buffer.concat([b, createHash('sha1').update(b).digest()]);
    expect(decodeResume(fixed)).toMatchObject({ ok: false, reason: expect.stringMatching(/past/) });
  });

  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const d = decodeResume(Buffer.from(bytes));
        expect(typeof d.ok).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips random states', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 70 }),
        fc.integer({ min: 1, max: 1 << 20 }),
        fc.array(
          fc.record({
            size: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
            mtimeNs: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
            ino: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
          }),
          { maxLength: 5 },
        ),
        fc.array(fc.nat(), { maxLength: 10 }),
        (pieceCount, pieceLength, files, bits) => {
          const have = new Bitfield(pieceCount);
          for (const b of bits) have.set(b % pieceCount);
          const s: ResumeState = {
            infoHash: Buffer.alloc(20, 7),
            pieceLength,
            totalLength: pieceLength * (pieceCount - 1) + 1,
            pieceCount,
            files,
            have,
          };
          const d = decodeOk(encodeResume(s));
          expect(allStamps(d.state.files)).toEqual(files);
          expect(d.state.have.toBuffer().equals(have.toBuffer())).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('names a mismatch with the torrent', () => {
    const s = state();
    const t = {
      infoHash: s.infoHash,
      pieceLength: s.pieceLength,
      length: s.totalLength,
      pieceCount: s.pieceCount,
      files: 2,
    };
    expect(resumeMismatch(s, t)).toBeNull();
    expect(resumeMismatch(s, { ...t, infoHash: Buffer.alloc(20) })).toMatch(/another torrent/);
    expect(resumeMismatch(s, { ...t, files: 3 })).toMatch(/shape/);
  });
});

describe('start-up plan', () => {
  // Two files of 40 000 and 60 000 bytes, pieces of 16 KiB: piece 2 crosses the boundary.
  const layout = new Layout(
    [
      { offset: 0, length: 40_000 },
      { offset: 40_000, length: 60_000 },
    ],
    16384,
    100_000,
  );
  const torrent = {
    infoHash: Buffer.alloc(20, 1),
    pieceLength: 16384,
    length: 100_000,
    pieceCount: layout.pieceCount,
    pieceHashes: Buffer.alloc(20 * layout.pieceCount),
    files: [{}, {}],
  };
  const stamps: FileStamp[] = [
    { size: 40_000, mtimeNs: 1000n, ino: 11n },
    { size: 60_000, mtimeNs: 2000n, ino: 12n },
  ];
  const existed = [{ existed: true }, { existed: true }];
  /** A resume file as read from disk: last written at `writtenNs` (its mtime). */
  function resume(have: number[], journal: number[] = [], files = stamps, writtenNs = 10_000n) {
    const bf = new Bitfield(layout.pieceCount);
    for (const i of have) bf.set(i);
    const d = decodeResume(
      encodeResume(
        {
          infoHash: torrent.infoHash,
          pieceLength: 16384,
          totalLength: 100_000,
          pieceCount: layout.pieceCount,
          files,
          have: bf,
        },
        journal,
      ),
    );
    return d.ok ? { ...d, writtenNs } : d;
  }
  const list = (bf: Bitfield) => [...Array(bf.size).keys()].filter((i) => bf.has(i));

  it('believes an unchanged checkpoint without reading anything', () => {
    const p = planStartup(layout, existed, stamps, resume([0, 1, 2, 5]), torrent);
    expect(p.resume).toBe('used');
    expect(list(p.trusted)).toEqual([0, 1, 2, 5]);
    expect(p.toHash).toEqual([]);
  });

  it('takes the files as they are now from a StampTable, as storage keeps them', () => {
    const table = new StampTable(2);
    table.set(0, 40_000, 1000n, 11n);
    table.set(1, 60_000, 2222n, 12n);
    const p = planStartup(layout, existed, table, resume([0, 1, 2, 5]), torrent);
    // File 1 changed (its mtime) and no journal explains it: its pieces are hashed again.
    expect(list(p.trusted)).toEqual([0, 1]);
    expect(p.toHash).toEqual([2, 3, 4, 5, 6]);
  });

  it('re-hashes the journal pieces; a newer mtime explained by the journal is still trusted', () => {
    const now = [stamps[0]!, { ...stamps[1]!, mtimeNs: 9999n }];
    const p = planStartup(layout, existed, now, resume([0, 1, 2], [4]), torrent);
    expect(list(p.trusted)).toEqual([0, 1, 2]);
    expect(p.toHash).toEqual([4]);
  });

  it('re-hashes every piece of a journaled file changed later than the journal allows', () => {
    // After a crash, someone copied another version over the file: its time is past the
    // resume file's last write by more than a write's start could be.
    const late = 10_000n + JOURNAL_SLACK_NS + 1n;
    const now = [stamps[0]!, { ...stamps[1]!, mtimeNs: late }];
    const p = planStartup(layout, existed, now, resume([0, 1, 2, 5], [4]), torrent);
    expect(p.fileTrust).toEqual(['trusted', 'untrusted']);
    expect(list(p.trusted)).toEqual([0, 1]);
    expect(p.toHash).toEqual([2, 3, 4, 5, 6]);
    // Within the slack, the journal explains it.
    const inTime = [stamps[0]!, { ...stamps[1]!, mtimeNs: late - 1n }];
    const q = planStartup(layout, existed, inTime, resume([0, 1, 2, 5], [4]), torrent);
    expect(q.fileTrust).toEqual(['trusted', 'trusted']);
    expect(q.toHash).toEqual([4]);
  });

  it('trusts no journaled file when the time of the journal is not known', () => {
    const now = [stamps[0]!, { ...stamps[1]!, mtimeNs: 9999n }];
    const d = resume([0, 1, 2, 5], [4]);
    if (!d.ok) throw new Error('not ok');
    const p = planStartup(layout, existed, now, { ...d, writtenNs: undefined }, torrent);
    expect(p.fileTrust).toEqual(['trusted', 'untrusted']);
    expect(p.toHash).toEqual([2, 3, 4, 5, 6]);
  });

  it('re-hashes a recorded piece named in the journal: it was written again since', () => {
    const now = [stamps[0]!, { ...stamps[1]!, mtimeNs: 9999n }];
    const p = planStartup(layout, existed, now, resume([0, 1, 2, 3], [3]), torrent);
    expect(list(p.trusted)).toEqual([0, 1, 2]);
    expect(p.toHash).toEqual([3]);
  });

  it('re-hashes every piece of a file changed with no journal entry to explain it', () => {
    const now = [stamps[0]!, { ...stamps[1]!, mtimeNs: 9999n }];
    const p = planStartup(layout, existed, now, resume([0, 1, 2, 5]), torrent);
    expect(p.fileTrust).toEqual(['trusted', 'untrusted']);
    expect(list(p.trusted)).toEqual([0, 1]);
    expect(p.toHash).toEqual([2, 3, 4, 5, 6]);
  });

  it('re-hashes a file with another inode or size', () => {
    for (const change of [{ ino: 99n }, { size: 39_999 }]) {
      const now = [{ ...stamps[0]!, ...change }, stamps[1]!];
      const p = planStartup(layout, existed, now, resume([0, 1, 2, 5]), torrent);
      expect(list(p.trusted)).toEqual([5]);
      expect(p.toHash).toEqual([0, 1, 2]);
    }
  });

  it('a file grown by its journaled writes since the checkpoint: only those pieces are hashed', () => {
    // File 1 was 20,000 bytes at the checkpoint (pieces 3-4 then); tdl then wrote piece 6, the
    // last, and the (sparse) file grew to its end: 60,000 bytes.
    const then = [stamps[0]!, { ...stamps[1]!, size: 20_000 }];
    const grown = [stamps[0]!, { ...stamps[1]!, mtimeNs: 9999n }];
    const p = planStartup(layout, existed, grown, resume([0, 1, 2], [6], then), torrent);
    expect(p.fileTrust).toEqual(['trusted', 'trusted']);
    expect(list(p.trusted)).toEqual([0, 1, 2]);
    expect(p.toHash).toEqual([6]);
    // Grown past what the journal's pieces reach: not tdl's writes alone.
    const q = planStartup(layout, existed, grown, resume([0, 1, 2], [4], then), torrent);
    expect(q.fileTrust).toEqual(['trusted', 'untrusted']);
    expect(q.toHash).toEqual([2, 3, 4, 5, 6]);
    // Grown later than the journal's last write allows: someone else's.
    const late = [stamps[0]!, { ...stamps[1]!, mtimeNs: 10_000n + JOURNAL_SLACK_NS + 1n }];
    const r = planStartup(layout, existed, late, resume([0, 1, 2], [6], then), torrent);
    expect(r.fileTrust).toEqual(['trusted', 'untrusted']);
  });

  it('a file created since the checkpoint: only its journaled pieces are hashed', () => {
    // Stamped all zeros: not there when the checkpoint was taken.
    const then = [stamps[0]!, { size: 0, mtimeNs: 0n, ino: 0n }];
    const now = [stamps[0]!, { ...stamps[1]!, mtimeNs: 9999n }];
    const p = planStartup(layout, existed, now, resume([0, 1], [3, 6], then), torrent);
    expect(p.fileTrust).toEqual(['trusted', 'trusted']);
    expect(list(p.trusted)).toEqual([0, 1]);
    expect(p.toHash).toEqual([3, 6]);
    // Without a journal entry that reaches its end, every piece of it is hashed.
    const q = planStartup(layout, existed, now, resume([0, 1], [3], then), torrent);
    expect(q.fileTrust).toEqual(['trusted', 'untrusted']);
    expect(q.toHash).toEqual([2, 3, 4, 5, 6]);
  });

  it('does not believe recorded pieces that lie past the end of their trusted file', () => {
    // File 1 as recorded and as it is now: 20,000 bytes, so pieces 3-6 cannot be on disk (an
    // earlier run counted zeros read past its end as their bytes).
    const short = [stamps[0]!, { ...stamps[1]!, size: 20_000 }];
    const p = planStartup(
      layout,
      existed,
      short,
      resume([0, 1, 2, 3, 4, 5, 6], [], short),
      torrent,
    );
    expect(p.fileTrust).toEqual(['trusted', 'trusted']);
    expect(list(p.trusted)).toEqual([0, 1, 2]);
    expect(p.toHash).toEqual([]);
  });

  it('does not read pieces of files that did not exist; forgets recorded pieces there', () => {
    const p = planStartup(
      layout,
      [{ existed: true }, { existed: false }],
      stamps,
      resume([0, 1, 2, 5]),
      torrent,
    );
    expect(list(p.trusted)).toEqual([0, 1]);
    expect(p.toHash).toEqual([]);
  });

  it('takes a piece of padding only as present, unread, when its hash is that of zeros', () => {
    // 10,000 bytes of data, padding to 3 pieces of 16 KiB (piece 1 all padding), then data.
    const padded = new Layout(
      [
        { offset: 0, length: 10_000 },
        { offset: 10_000, length: 3 * 16384 - 10_000 },
        { offset: 3 * 16384, length: 5_000 },
      ],
      16384,
      3 * 16384 + 5_000,
    );
    const hashes = Buffer.alloc(20 * padded.pieceCount);
    createHash('sha1').update(Buffer.alloc(16384)).digest().copy(hashes, 20);
    const t = { ...torrent, length: 3 * 16384 + 5_000, pieceCount: 4, pieceHashes: hashes };
    const facts = [{ existed: false }, { existed: false, padding: true }, { existed: false }];
    const p = planStartup(padded, facts, [null, null, null], null, t);
    expect(list(p.trusted)).toEqual([1]);
    expect(p.toHash).toEqual([]);
    // Hashed over other bytes: never present (it is fetched).
    const other = planStartup(padded, facts, [null, null, null], null, {
      ...t,
      pieceHashes: Buffer.alloc(20 * padded.pieceCount),
    });
    expect(other.trusted.count).toBe(0);
  });

  it('without a usable resume file, re-hashes everything that exists', () => {
    const all = [0, 1, 2, 3, 4, 5, 6];
    for (const d of [null, { ok: false as const, reason: 'x' }]) {
      const p = planStartup(layout, existed, stamps, d, torrent);
      expect(p.trusted.count).toBe(0);
      expect(p.toHash).toEqual(all);
    }
    const other = planStartup(layout, existed, stamps, resume([0, 1, 2, 3, 4, 5, 6]), {
      ...torrent,
      infoHash: Buffer.alloc(20, 2),
    });
    expect(other.resume).toBe('ignored');
    expect(other.reason).toMatch(/another torrent/);
    expect(other.toHash).toEqual(all);
  });
});
