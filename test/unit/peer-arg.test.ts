import { describe, expect, it } from 'vitest';
import { parsePeer } from '../../src/cli/peer-arg.js';

describe('--peer values', () => {
  it('takes HOST:PORT and [IPv6]:PORT', () => {
    expect(parsePeer('10.0.0.2:6881')).toEqual({ host: '10.0.0.2', port: 6881 });
    expect(parsePeer('seed.example:51413')).toEqual({ host: 'seed.example', port: 51413 });
    expect(parsePeer('[::1]:6881')).toEqual({ host: '::1', port: 6881 });
  });

  it('writes IPv6 in one form: [0::1] is [::1], an IPv4-mapped address is IPv4, a zone is kept', () => {
    expect(parsePeer('[0::1]:5').host).toBe('::1');
    expect(parsePeer('[2001:DB8:0:0:0:0:0:1]:5').host).toBe('2001:db8::1');
    expect(parsePeer('[::ffff:127.0.0.3]:5').host).toBe('127.0.0.3');
    expect(parsePeer('[::ffff:7f00:2]:5').host).toBe('127.0.0.2');
    expect(parsePeer('[fe80::1%lo]:5').host).toBe('fe80::1%lo');
  });

  it('refuses the rest, and says where an IPv6 address without brackets goes wrong', () => {
    expect(() => parsePeer('10.0.0.2')).toThrow(
      /^--peer 10\.0\.0\.2: expected HOST:PORT with a port from 1 to 65535$/,
    );
    expect(() => parsePeer('h:0')).toThrow(/port from 1 to 65535$/);
    expect(() => parsePeer('::1:6881')).toThrow(
      '--peer ::1:6881: expected HOST:PORT with a port from 1 to 65535 (an IPv6 address goes in brackets: [::1]:6881)',
    );
  });

  it('refuses a host with spaces or slashes, and brackets around what is not IPv6', () => {
    expect(() => parsePeer('a b:1')).toThrow(/^--peer a b:1: expected HOST:PORT/);
    expect(() => parsePeer('http://x:1')).toThrow(/expected HOST:PORT/);
    expect(() => parsePeer('[1.2.3.4]:5')).toThrow(
      '--peer [1.2.3.4]:5: brackets hold an IPv6 address (write 1.2.3.4:5)',
    );
    expect(() => parsePeer('[host]:5')).toThrow(
      '--peer [host]:5: brackets hold an IPv6 address (like [::1]:6881)',
    );
    expect(parsePeer('[fe80::1%eth0]:5').host).toBe('fe80::1%eth0');
  });

  it('refuses a link-local address without the name of its interface', () => {
    const needs = 'a link-local address needs the name of its interface, as in [fe80::1%eth0]:6881';
    expect(() => parsePeer('[fe80::1]:5')).toThrow(`--peer [fe80::1]:5: ${needs}`);
    expect(() => parsePeer('[FEBF::fc:ff:fe00:1%4]:5')).toThrow(needs);
    expect(parsePeer('[fec0::1]:5').host).toBe('fec0::1'); // not link-local
    expect(parsePeer('[fe8::1]:5').host).toBe('fe8::1'); // 0fe8: not link-local either
    expect(parsePeer('[fe9f::1%lo]:5').host).toBe('fe9f::1%lo');
  });
});
