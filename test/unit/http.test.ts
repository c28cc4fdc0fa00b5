import { describe, expect, it } from 'vitest';
import { followRedirect } from '../../src/http.js';

const STRICT = { redirects: 0, max: 5, noDowngrade: true };
const resolve = (from: string, to: string | undefined) => followRedirect(from, to, 302, STRICT);

describe('followRedirect', () => {
  it('follows relative and absolute http(s) redirects, dropping the fragment', () => {
    expect(resolve('http://a/x/y', '/z?q=1#frag')).toEqual({ url: 'http://a/z?q=1' });
    expect(resolve('http://a/x/y', 'w')).toEqual({ url: 'http://a/x/w' });
    expect(resolve('http://a/x', 'https://ia800.us.archive.org/1/items/x')).toEqual({
      url: 'https://ia800.us.archive.org/1/items/x',
    });
    expect(resolve('https://a/x', 'https://b/y')).toEqual({ url: 'https://b/y' });
    expect(resolve('https://a/x', '//b/y')).toEqual({ url: 'https://b/y' });
  });

  it('refuses other schemes, a downgrade to http: and unparsable locations', () => {
    for (const [from, to] of [
      ['http://a/x', 'file:///etc/passwd'],
      ['http://a/x', 'ftp://a/x'],
      ['http://a/x', 'data:text/plain,hi'],
      ['http://a/x', 'javascript:alert(1)'],
      ['http://a/x', 'ws://a/x'],
      ['https://a/x', 'http://a/x'],
      ['http://a/x', 'http://[::1'],
    ] as const) {
      expect(resolve(from, to), `${from} -> ${to}`).toHaveProperty('refused');
    }
  });

  it('allows a downgrade only when not refused; counts redirects; needs a Location', () => {
    expect(followRedirect('https://a/x', 'http://a/y', 301, { redirects: 0, max: 5 })).toEqual({
      url: 'http://a/y',
    });
    expect(followRedirect('http://a/x', 'http://a/y', 301, { redirects: 5, max: 5 })).toEqual({
      refused: 'more than 5 redirects',
    });
    expect(resolve('http://a/x', undefined)).toEqual({
      refused: 'HTTP 302 redirect without a Location',
    });
  });
});
