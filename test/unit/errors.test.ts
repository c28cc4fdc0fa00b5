import { describe, expect, it } from 'vitest';
import {
  describeError,
  DiskError,
  StdoutClosedError,
  stdoutWriteError,
  systemErrorText,
  TrackerError,
} from '../../src/errors.js';
import { EXIT, exitCodeFor } from '../../src/cli/exit-codes.js';

describe('describeError', () => {
  it('adds the codes of the error and its cause that the message lacks, once each', () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), {
      code: 'ECONNREFUSED',
    });
    const err = Object.assign(new TypeError('fetch failed', { cause }), { code: 'UND_ERR' });
    expect(describeError(err)).toBe('fetch failed (UND_ERR, ECONNREFUSED)');
    const same = Object.assign(new Error('send failed', { cause }), { code: 'ECONNREFUSED' });
    expect(describeError(same)).toBe('send failed (ECONNREFUSED)');
    expect(describeError(cause)).toBe('connect ECONNREFUSED 127.0.0.1:1');
  });

  it('says a write after the peer ended as any other EPIPE', () => {
    const ended = Object.assign(new Error('This socket has been ended by the other party'), {
      code: 'EPIPE',
    });
    const written = Object.assign(new Error('write EPIPE'), { code: 'EPIPE', syscall: 'write' });
    expect(describeError(ended)).toBe('broken pipe (EPIPE)');
    expect(describeError(written)).toBe('broken pipe (EPIPE)');
  });

  it("gives a TLS failure's reason, not OpenSSL's text and its newline", async () => {
    const tls = await import('node:tls');
    const { createServer } = await import('node:net');
    // A server that answers a TLS hello in plain HTTP, as `https://` to an http:// server.
    const conns = new Set<import('node:net').Socket>();
    const server = createServer((c) => {
      conns.add(c);
      c.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const client = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false });
      const err = await new Promise<Error>((resolve) => client.on('error', resolve));
      client.destroy();
      expect(describeError(err)).toBe(
        'TLS failed: wrong version number (ERR_SSL_WRONG_VERSION_NUMBER; is it an http:// server?)',
      );
      expect(describeError(new TypeError('fetch failed', { cause: err }))).toBe(describeError(err));
    } finally {
      for (const c of conns) c.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it("puts a failed call's code in words, without the call and address Node's message names", async () => {
    const { createConnection, createServer } = await import('node:net');
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((r) => server.close(() => r()));
    const err = await new Promise<Error>((resolve) =>
      createConnection(port, '127.0.0.1').on('error', resolve),
    );
    expect(err.message).toBe(`connect ECONNREFUSED 127.0.0.1:${port}`);
    expect(describeError(err)).toBe('connection refused (ECONNREFUSED)');
    const reset = Object.assign(new Error('read ECONNRESET'), {
      code: 'ECONNRESET',
      syscall: 'read',
    });
    expect(describeError(reset)).toBe('connection reset by peer (ECONNRESET)');
  });

  it('describes what is not an Error', () => {
    expect(describeError('boom')).toBe('boom');
    expect(describeError(42)).toBe('42');
    expect(describeError(undefined)).toBe('undefined');
  });
});

describe('exit codes', () => {
  it('a closed stdout is 141, as SIGPIPE; trackers failing are 4', () => {
    expect(exitCodeFor(new StdoutClosedError('EPIPE'))).toBe(EXIT.stdoutClosed);
    expect(EXIT.stdoutClosed).toBe(141);
    expect(exitCodeFor(new TrackerError('x'))).toBe(4);
    expect(exitCodeFor(new Error('bug'))).toBe(1);
  });

  it('a failed write to stdout: a reader gone is 141, a full or failing disk is 6', () => {
    const failed = (code?: string) =>
      stdoutWriteError(Object.assign(new Error(`write ${code ?? ''}`), code ? { code } : {}));
    for (const code of ['EPIPE', 'ECONNRESET', undefined]) {
      const e = failed(code);
      expect(e, code).toBeInstanceOf(StdoutClosedError);
      expect(exitCodeFor(e)).toBe(EXIT.stdoutClosed);
    }
    const words: Record<string, string> = {
      ENOSPC: 'no space left on device',
      EDQUOT: 'disk quota exceeded',
      EFBIG: 'file too large',
      EIO: 'i/o error',
      EROFS: 'read-only file system',
      // stdout open for reading only (`1</dev/null`): nobody closed anything
      EBADF: 'bad file descriptor',
    };
    for (const [code, text] of Object.entries(words)) {
      const e = failed(code);
      expect(e, code).toBeInstanceOf(DiskError);
      expect(e.message).toBe(`cannot write to standard output: ${text}`);
      expect(exitCodeFor(e)).toBe(EXIT.disk);
    }
  });
});

describe('systemErrorText', () => {
  it('words of a system error without its call and path; other messages as they are', () => {
    const enoent = Object.assign(new Error("ENOENT: no such file or directory, open '/x, y'"), {
      code: 'ENOENT',
    });
    expect(systemErrorText(enoent)).toBe('no such file or directory');
    // Node's stream errors say only the call and the code.
    const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    expect(systemErrorText(epipe)).toBe('broken pipe');
    expect(systemErrorText(Object.assign(new Error(''), { code: 'ENOTREG' }))).toBe('ENOTREG');
    const own = Object.assign(new Error('/x is not a regular file'), { code: 'ENOTREG' });
    expect(systemErrorText(own)).toBe('/x is not a regular file');
    expect(systemErrorText(new Error('plain'))).toBe('plain');
    expect(systemErrorText('text')).toBe('text');
  });
});
