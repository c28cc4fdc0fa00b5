import { describe, expect, it } from 'vitest';
import { resolveRedirect } from '../../src/webseed/client.js';

describe('resolveRedirect', () => {
  it('follows relative and absolute http(s) redirects, dropping the fragment', () => {
    expect(resolveRedirect('http://a/x/y', '/z?q=1#frag')).toEqual({ url: 'http://a/z?q=1' });
    expect(resolveRedirect('http://a/x/y', 'w')).toEqual({ url: 'http://a/x/w' });
    expect(resolveRedirect('http://a/x', 'https://ia800.us.archive.org/1/items/x')).toEqual({
      url: 'https://ia800.us.archive.org/1/items/x',
    });
    expect(resolveRedirect('https://a/x', 'https://b/y')).toEqual({ url: 'https://b/y' });
    expect(resolveRedirect('https://a/x', '//b/y')).toEqual({ url: 'https://b/y' });
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
      expect(resolveRedirect(from, to), `${from} -> ${to}`).toHaveProperty('refused');
    }
  });
});
