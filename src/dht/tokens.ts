/**
 * announce_peer tokens (BEP 5). A token is the first 8 bytes of SHA-1(secret ‖ ip); the secret
 * changes every ROTATE_MS and the previous one is still accepted, so a token is good for 5 to
 * 10 minutes and only from the address it was given to. Time comes from `now`.
 */
import { createHash, randomBytes } from 'node:crypto';

export const TOKEN_ROTATE_MS = 5 * 60_000;
const TOKEN_BYTES = 8;

export class TokenIssuer {
  private current: Buffer;
  private previous: Buffer;
  private rotatedAt: number;

  constructor(
    private readonly now: () => number = Date.now,
    private readonly random: (n: number) => Buffer = randomBytes,
  ) {
    this.current = random(16);
    this.previous = random(16);
    this.rotatedAt = now();
  }

  private rotate(): void {
    const t = this.now();
    const elapsed = t - this.rotatedAt;
    if (elapsed < TOKEN_ROTATE_MS) return;
    // After two periods without use, the old secret is gone too.
    this.previous = elapsed >= 2 * TOKEN_ROTATE_MS ? this.random(16) : this.current;
    this.current = this.random(16);
    this.rotatedAt = t - (elapsed % TOKEN_ROTATE_MS);
  }

  private make(secret: Buffer, host: string): Buffer {
    return createHash('sha1').update(secret).update(host).digest().subarray(0, TOKEN_BYTES);
  }

  /** The token to give `host` now. */
  issue(host: string): Buffer {
    this.rotate();
    return this.make(this.current, host);
  }

  /** True when `token` was given to `host` with the current or the previous secret. */
  check(host: string, token: Buffer | undefined): boolean {
    if (!token || token.length !== TOKEN_BYTES) return false;
    this.rotate();
    return (
      token.equals(this.make(this.current, host)) || token.equals(this.make(this.previous, host))
    );
  }
}
