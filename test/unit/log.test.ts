import { afterEach, describe, expect, it, vi } from 'vitest';

describe('debug logs', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    delete process.env['DEBUG'];
  });

  it('write what others said with its control characters escaped', async () => {
    process.env['DEBUG'] = 'tdl:logtest';
    process.env['DEBUG_COLORS'] = 'no';
    vi.resetModules();
    const { logger, logText } = await import('../../src/log.js');
    const lines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    logger('tdl:logtest')('tracker %s: %s', 'http://t/a', 'bad \x1b[31mred\x1b[0m\r\x9b2J');
    expect(lines.join('')).toContain('tracker http://t/a: bad \\x1b[31mred\\x1b[0m\\x0d\\x9b2J');
    expect(logText('plain text, é, 日本')).toBe('plain text, é, 日本');
  });
});
