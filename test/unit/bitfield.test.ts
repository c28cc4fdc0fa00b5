import { describe, expect, it } from 'vitest';
import { WireError } from '../../src/errors.js';
import { Bitfield } from '../../src/wire/bitfield.js';

describe('Bitfield', () => {
  it('uses BitTorrent bit order (piece 0 = high bit of byte 0)', () => {
    const bf = new Bitfield(10);
    bf.set(0);
    bf.set(9);
    expect(bf.toBuffer().toString('hex')).toBe('8040');
    expect(bf.has(0)).toBe(true);
    expect(bf.has(1)).toBe(false);
    expect(bf.has(9)).toBe(true);
    expect(bf.count).toBe(2);
  });

  it('counts, completes and clears', () => {
    const bf = new Bitfield(9);
    expect(bf.size).toBe(9);
    expect(bf.isComplete()).toBe(false);
    for (let i = 0; i < 9; i++) bf.set(i);
    bf.set(3); // idempotent
    expect(bf.count).toBe(9);
    expect(bf.isComplete()).toBe(true);
    expect(bf.toBuffer().toString('hex')).toBe('ff80');
    bf.clear(8);
    bf.clear(8);
    expect(bf.count).toBe(8);
    expect(bf.isComplete()).toBe(false);
  });

  it('treats out-of-range indexes safely', () => {
    const bf = new Bitfield(8);
    expect(bf.has(8)).toBe(false);
    expect(bf.has(-1)).toBe(false);
    expect(() => bf.set(8)).toThrow(WireError);
    expect(() => bf.clear(-1)).toThrow(WireError);
    expect(() => bf.set(1.5)).toThrow(WireError);
  });

  it('fromWire accepts a well-formed payload', () => {
    const bf = Bitfield.fromWire(Buffer.from([0b10100000, 0b11000000]), 10);
    expect([0, 1, 2, 3, 8, 9].map((i) => bf.has(i))).toEqual([
      true,
      false,
      true,
      false,
      true,
      true,
    ]);
    expect(bf.count).toBe(4);
    expect(Bitfield.fromWire(Buffer.from([0xff]), 8).isComplete()).toBe(true);
  });

  it('fromWire rejects a wrong length', () => {
    expect(() => Bitfield.fromWire(Buffer.alloc(1), 10)).toThrow(WireError);
    expect(() => Bitfield.fromWire(Buffer.alloc(3), 10)).toThrow(/expected 2/);
    expect(() => Bitfield.fromWire(Buffer.alloc(0), 1)).toThrow(WireError);
  });

  it('fromWire rejects spare bits set', () => {
    expect(() => Bitfield.fromWire(Buffer.from([0xff, 0xe0]), 10)).toThrow(/spare/);
    expect(() => Bitfield.fromWire(Buffer.from([0x01]), 7)).toThrow(/spare/);
    expect(() => Bitfield.fromWire(Buffer.from([0xfe]), 7)).not.toThrow();
  });

  it('copies its input', () => {
    const src = Buffer.from([0x80]);
    const bf = new Bitfield(8, src);
    src[0] = 0;
    expect(bf.has(0)).toBe(true);
    const out = bf.toBuffer();
    out[0] = 0;
    expect(bf.has(0)).toBe(true);
  });

  it('merge sets the bits of another bitfield (or all) and returns those it added', () => {
    const a = new Bitfield(20);
    a.set(0);
    a.set(9);
    const b = new Bitfield(20);
    for (const i of [0, 1, 9, 10, 19]) b.set(i);
    expect(a.merge(b)).toEqual([1, 10, 19]);
    expect(a.count).toBe(5);
    expect(a.merge(b)).toEqual([]);
    expect(a.merge(null)).toEqual([2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 16, 17, 18]);
    expect(a.isComplete()).toBe(true);
    // Spare bits past the last piece are never set.
    expect(a.toBuffer()).toEqual(Buffer.from([0xff, 0xff, 0xf0]));
    expect(a.merge(null)).toEqual([]);
  });

  it('countBoth counts the bits set in both, and refuses another size', () => {
    const a = new Bitfield(20);
    const b = new Bitfield(20);
    for (const i of [0, 3, 9, 19]) a.set(i);
    for (const i of [3, 9, 10, 18]) b.set(i);
    expect(a.countBoth(b)).toBe(2);
    expect(b.countBoth(a)).toBe(2);
    expect(a.countBoth(a)).toBe(4);
    expect(() => a.countBoth(new Bitfield(21))).toThrow(RangeError);
  });
});
