import { describe, expect, it } from 'vitest';
import {
  describeError,
  DiskError,
  StdoutClosedError,
  stdoutWriteError,
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
    for (const code of ['EPIPE', 'ECONNRESET', 'EBADF', undefined]) {
      const e = failed(code);
      expect(e, code).toBeInstanceOf(StdoutClosedError);
      expect(exitCodeFor(e)).toBe(EXIT.stdoutClosed);
    }
    for (const code of ['ENOSPC', 'EDQUOT', 'EFBIG', 'EIO', 'EROFS']) {
      const e = failed(code);
      expect(e, code).toBeInstanceOf(DiskError);
      expect(e.message).toBe(`cannot write to standard output: ${code}`);
      expect(exitCodeFor(e)).toBe(EXIT.disk);
    }
  });
});
