import { describe, expect, it } from 'vitest';
import { MAX_LEARNT, OwnAddresses, hostOfBytes } from '../../src/swarm/own-addresses.js';
import { canonicalHost } from '../../src/tracker/compact.js';

const PORT = 6881;
const at = (host: string, port = PORT) => ({ host, port });

describe('OwnAddresses', () => {
  it('listening on all addresses: the loopback range and every interface address, at our port', () => {
    for (const any of ['0.0.0.0', '::']) {
      const own = new OwnAddresses(PORT, any, ['192.168.1.10', 'fe80::1']);
      for (const h of ['127.0.0.1', '127.0.0.7', '::1', '0.0.0.0', '192.168.1.10', 'fe80::1']) {
        expect(own.has(at(h)), h).toBe(true);
      }
      expect(own.has(at('::ffff:192.168.1.10'))).toBe(true);
      expect(own.has(at('127.0.0.1', PORT + 1))).toBe(false);
      expect(own.has(at('192.168.1.11'))).toBe(false);
      expect(own.has(at('not-an-ip'))).toBe(false);
    }
  });

  it('bound to one address: that address only (another loopback address is another program)', () => {
    const own = new OwnAddresses(PORT, '127.0.0.5', ['192.168.1.10']);
    expect(own.has(at('127.0.0.5'))).toBe(true);
    expect(own.has(at('127.0.0.1'))).toBe(false);
    expect(own.has(at('192.168.1.10'))).toBe(false);
  });

  it("learns where peers see us (yourip), but not this host's own addresses", () => {
    const own = new OwnAddresses(PORT, '127.0.0.5', ['192.168.1.10']);
    own.learn('203.0.113.9');
    own.learn('127.0.0.1');
    own.learn('192.168.1.10');
    expect(own.has(at('203.0.113.9'))).toBe(true);
    expect(own.has(at('203.0.113.9', PORT + 1))).toBe(false);
    expect(own.has(at('127.0.0.1'))).toBe(false);
    expect(own.has(at('192.168.1.10'))).toBe(false);
  });

  it(`remembers at most ${MAX_LEARNT} learnt addresses`, () => {
    const own = new OwnAddresses(PORT, '0.0.0.0', []);
    for (let i = 1; i <= MAX_LEARNT + 5; i++) own.learn(`198.51.100.${i}`);
    expect(own.has(at(`198.51.100.${MAX_LEARNT}`))).toBe(true);
    expect(own.has(at(`198.51.100.${MAX_LEARNT + 1}`))).toBe(false);
  });

  it('port 0 (not listening) is never ours', () => {
    expect(new OwnAddresses(0, '0.0.0.0', []).has(at('127.0.0.1', 0))).toBe(false);
  });

  it('spells addresses one way', () => {
    expect(canonicalHost('::FFFF:10.0.0.1')).toBe('10.0.0.1');
    expect(canonicalHost('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalHost('host.example')).toBeNull();
    expect(hostOfBytes(Buffer.from([203, 0, 113, 9]))).toBe('203.0.113.9');
    expect(hostOfBytes(Buffer.alloc(16).fill(0, 0, 15).fill(1, 15))).toBe('::1');
    expect(hostOfBytes(Buffer.alloc(5))).toBeNull();
  });
});
