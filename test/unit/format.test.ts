import { describe, expect, it } from 'vitest';
import { escapeControl, formatBytes, formatDuration, redactUrls } from '../../src/cli/format.js';

describe('terminal text', () => {
  it('escapes control characters from torrents and trackers', () => {
    expect(escapeControl('a\x1b[31mb\nc\x07')).toBe('a\\x1b[31mb\\nc\\x07');
    expect(escapeControl('plain é 名')).toBe('plain é 名');
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
    expect(redactUrls('no url here')).toBe('no url here');
  });

  it('formats sizes and durations', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(256 * 1024 * 1024)).toBe('256 MiB');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatDuration(61_000)).toBe('01:01');
    expect(formatDuration(3_725_000)).toBe('1:02:05');
    expect(formatDuration(Infinity)).toBe('--:--');
  });
});
