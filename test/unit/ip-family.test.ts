import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';

// Count the calls to Node's IPv6 check (its pattern costs 20-40 ms of CPU at first use).
const v6Calls = vi.hoisted(() => ({ n: 0 }));
vi.mock('node:net', async (importOriginal) => {
  const net = await importOriginal<typeof import('node:net')>();
  return {
    ...net,
    isIPv6: (s: string) => {
      v6Calls.n++;
      return net.isIPv6(s);
    },
  };
});

const { isIP } = await vi.importActual<typeof import('node:net')>('node:net');
const { ipFamily } = await import('../../src/tracker/compact.js');

const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 42;
const numRuns = process.env.FUZZ_RUNS !== undefined ? Number(process.env.FUZZ_RUNS) : 3000;

describe('ipFamily', () => {
  it('answers as net.isIP does', () => {
    const samples = [
      '127.0.0.1',
      '0.0.0.0',
      '255.255.255.255',
      '256.1.1.1',
      '1.2.3',
      '::',
      '::1',
      '[::1]',
      'fe80::1%eth0',
      '2001:db8::ff00:42:8329',
      '::ffff:192.0.2.1',
      '1:2:3:4:5:6:7:8',
      '1:2:3:4:5:6:7:8:9',
      ':',
      'router.bittorrent.com',
      'localhost',
      '',
      ' 127.0.0.1',
    ];
    for (const s of samples) expect(ipFamily(s), s).toBe(isIP(s));
    const text = fc.oneof(
      fc.string({ maxLength: 45 }),
      fc.ipV4(),
      fc.ipV6(),
      fc.ipV4Extended(),
      fc.domain(),
      fc
        .array(fc.constantFrom('0', '1', 'f', 'F', ':', '.', '%', '255', 'ffff', '::'), {
          maxLength: 14,
        })
        .map((xs) => xs.join('')),
    );
    fc.assert(
      fc.property(text, (s) => ipFamily(s) === isIP(s)),
      { seed, numRuns },
    );
  });

  it('never runs the IPv6 pattern on a host name or IPv4 text', () => {
    v6Calls.n = 0;
    for (const h of ['router.bittorrent.com', 'dht.libtorrent.org', 'localhost', '10.0.0.1']) {
      ipFamily(h);
    }
    expect(v6Calls.n).toBe(0);
    expect(ipFamily('::1')).toBe(6);
    expect(v6Calls.n).toBe(1);
  });
});
