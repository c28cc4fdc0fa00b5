/**
 * What the three HTTP clients (trackers, web seeds, `.torrent` URLs) share: which statuses are
 * redirects, how a redirect is followed, and binary-safe percent-encoding. Pure; each client
 * wraps a refusal in its own error type.
 */

export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/**
 * Informational (1xx) replies taken before a request's real one; past this the server only
 * stalls, and each reply costs a parse (a tracker that sent them without end kept a core busy
 * for the whole of its 10 s limit, a web seed for 20 s). An honest server sends one or two.
 */
export const MAX_INFORMATIONAL_REPLIES = 16;

/** The refusal of a server that sent more than MAX_INFORMATIONAL_REPLIES. */
export const TOO_MANY_INFORMATIONAL = `more than ${MAX_INFORMATIONAL_REPLIES} informational (1xx) replies`;

/**
 * For an undici request: its `signal` (the caller's, or aborted by `refusal(message)` once the
 * server sent more than MAX_INFORMATIONAL_REPLIES) and the `onInfo` that counts them.
 */
export function informationalLimit(
  signal: AbortSignal,
  refusal: (message: string) => Error,
): { signal: AbortSignal; onInfo: () => void } {
  const stalling = new AbortController();
  let informational = 0;
  return {
    signal: AbortSignal.any([signal, stalling.signal]),
    onInfo: () => {
      if (++informational > MAX_INFORMATIONAL_REPLIES) {
        stalling.abort(refusal(TOO_MANY_INFORMATIONAL));
      }
    },
  };
}

export interface RedirectRules {
  /** Redirects already followed for this request. */
  redirects: number;
  /** Most redirects followed. */
  max: number;
  /** Refuse a redirect from https: down to http:. */
  noDowngrade?: boolean;
}

/**
 * The next URL of a redirect (`statusCode` one of REDIRECT_STATUSES) from `from`, or why it is
 * refused: no Location, too many redirects, a URL that does not parse, a scheme other than
 * http/https, a downgrade when refused. The fragment is dropped.
 */
export function followRedirect(
  from: string,
  location: string | undefined,
  statusCode: number,
  rules: RedirectRules,
): { url: string } | { refused: string } {
  if (!location) return { refused: `HTTP ${statusCode} redirect without a Location` };
  if (rules.redirects >= rules.max) return { refused: `more than ${rules.max} redirects` };
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    return { refused: 'redirect to an invalid URL' };
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:') {
    return { refused: `redirect to unsupported scheme ${next.protocol}` };
  }
  if (rules.noDowngrade && next.protocol === 'http:' && new URL(from).protocol === 'https:') {
    return { refused: 'redirect from https: down to http:' };
  }
  next.hash = '';
  return { url: next.href };
}

/** Characters left as they are (RFC 3986 unreserved set); every other byte becomes %XX. */
function isUnreserved(b: number): boolean {
  return (
    (b >= 0x30 && b <= 0x39) || // 0-9
    (b >= 0x41 && b <= 0x5a) || // A-Z
    (b >= 0x61 && b <= 0x7a) || // a-z
    b === 0x2d || // -
    b === 0x2e || // .
    b === 0x5f || // _
    b === 0x7e // ~
  );
}

/** Binary-safe percent-encoding: every byte outside the unreserved set as %XX (upper case). */
export function percentEncodeBytes(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    out += isUnreserved(b)
      ? String.fromCharCode(b)
      : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
