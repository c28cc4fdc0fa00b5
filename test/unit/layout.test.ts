import { describe, expect, it } from 'vitest';
import { Layout, type LayoutFile } from '../../src/storage/layout.js';

function files(...lengths: number[]): LayoutFile[] {
  let offset = 0;
  return lengths.map((length) => {
    const f = { offset, length };
    offset += length;
    return f;
  });
}

describe('piece <-> file layout', () => {
  it('splits a piece that spans three files', () => {
    // piece 1 covers bytes 100..199: the end of file 0, all of file 1, the start of file 2
    const l = new Layout(files(150, 20, 100), 100, 270);
    expect(l.pieceCount).toBe(3);
    expect(l.spans(1)).toEqual([
      { fileIndex: 0, fileOffset: 100, pieceOffset: 0, length: 50 },
      { fileIndex: 1, fileOffset: 0, pieceOffset: 50, length: 20 },
      { fileIndex: 2, fileOffset: 0, pieceOffset: 70, length: 30 },
    ]);
    expect(l.pieceSize(2)).toBe(70);
  });

  it("counts a piece's data bytes, padding files left out", () => {
    // files: data 150, padding 20, data 100; pieces of 100 bytes
    const l = new Layout(files(150, 20, 100), 100, 270);
    const padding = (i: number) => i === 1;
    expect([0, 1, 2].map((i) => l.dataBytes(i, padding))).toEqual([100, 80, 70]);
    expect([0, 1, 2].map((i) => l.dataBytes(i, () => false))).toEqual([100, 100, 70]);
  });

  it('skips empty files, wherever they are', () => {
    const l = new Layout(files(0, 10, 0, 0, 10, 0), 8, 20);
    const all = [0, 1, 2].flatMap((i) => l.spans(i));
    expect(all.every((s) => s.fileIndex === 1 || s.fileIndex === 4)).toBe(true);
    expect(all.reduce((n, s) => n + s.length, 0)).toBe(20);
    expect(l.spans(1)).toEqual([
      { fileIndex: 1, fileOffset: 8, pieceOffset: 0, length: 2 },
      { fileIndex: 4, fileOffset: 0, pieceOffset: 2, length: 6 },
    ]);
    expect(l.piecesOfFile(0)).toBeNull();
    expect(l.piecesOfFile(4)).toEqual({ first: 1, last: 2 });
  });

  it('has a last piece shorter than one block, and sizes blocks', () => {
    const l = new Layout(files(32768 * 2 + 1), 32768, 32768 * 2 + 1);
    expect(l.pieceCount).toBe(3);
    expect(l.pieceSize(2)).toBe(1);
    expect(l.blockCount(2, 16384)).toBe(1);
    expect(l.blockSize(2, 0, 16384)).toBe(1);
    expect(l.blockCount(0, 16384)).toBe(2);
    expect(() => l.blockSize(2, 1, 16384)).toThrow(RangeError);
  });

  it('handles pieces smaller than a block', () => {
    const l = new Layout(files(8192 * 3 + 5), 8192, 8192 * 3 + 5);
    expect(l.pieceCount).toBe(4);
    expect(l.blockCount(0, 16384)).toBe(1);
    expect(l.blockSize(0, 0, 16384)).toBe(8192);
    expect(l.blockSize(3, 0, 16384)).toBe(5);
  });

  it('covers every byte exactly once across all pieces', () => {
    const lens = [1, 0, 4095, 4097, 0, 12345, 3];
    const total = lens.reduce((a, b) => a + b, 0);
    for (const pl of [1, 7, 4096, 16384, 65536]) {
      const l = new Layout(files(...lens), pl, total);
      const seen = lens.map((n) => new Uint8Array(n));
      for (let i = 0; i < l.pieceCount; i++) {
        let pieceBytes = 0;
        for (const s of l.spans(i)) {
          expect(s.pieceOffset).toBe(pieceBytes);
          for (let k = 0; k < s.length; k++) seen[s.fileIndex]![s.fileOffset + k]!++;
          pieceBytes += s.length;
        }
        expect(pieceBytes).toBe(l.pieceSize(i));
      }
      for (const f of seen) expect(f.every((c) => c === 1)).toBe(true);
    }
  });

  it('gives sub-ranges of a piece', () => {
    const l = new Layout(files(10, 10), 20, 20);
    expect(l.spans(0, 8, 4)).toEqual([
      { fileIndex: 0, fileOffset: 8, pieceOffset: 8, length: 2 },
      { fileIndex: 1, fileOffset: 0, pieceOffset: 10, length: 2 },
    ]);
    expect(() => l.spans(0, 15, 10)).toThrow(RangeError);
    expect(() => l.spans(1)).toThrow(RangeError);
  });
});

describe('a layout from file starts (files laid end to end)', () => {
  it('maps pieces exactly as one built from file objects', () => {
    const lengths = [0, 7, 0, 0, 13, 1, 0, 40, 3, 0];
    const list = files(...lengths);
    const total = lengths.reduce((a, b) => a + b, 0);
    const starts = Float64Array.from([...list.map((f) => f.offset), total]);
    for (const pl of [1, 2, 5, 8, 64]) {
      const a = new Layout(list, pl, total);
      const b = new Layout({ starts }, pl, total);
      expect(b.fileCount).toBe(list.length);
      for (let p = 0; p < a.pieceCount; p++) expect(b.spans(p)).toEqual(a.spans(p));
      for (let i = 0; i < list.length; i++) {
        expect(b.piecesOfFile(i)).toEqual(a.piecesOfFile(i));
        expect(b.file(i)).toEqual(list[i]);
        expect([b.fileOffset(i), b.fileLength(i)]).toEqual([list[i]!.offset, list[i]!.length]);
      }
    }
  });

  it('refuses starts that do not end with the total or go backwards', () => {
    expect(() => new Layout({ starts: Float64Array.from([0, 5]) }, 4, 6)).toThrow(RangeError);
    expect(() => new Layout({ starts: Float64Array.from([0, 5, 3, 6]) }, 4, 6)).toThrow(RangeError);
    expect(() => new Layout(files(1, 2), 4, 3).fileLength(2)).toThrow(RangeError);
  });
});
