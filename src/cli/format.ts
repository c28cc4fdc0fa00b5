/** Text helpers for the terminal. Names from torrents and trackers are untrusted. */

/**
 * Escape control characters (C0, DEL, C1), line/paragraph separators, bidirectional embedding,
 * override and isolate controls, and lone surrogates, so that a name cannot drive the terminal
 * or disguise how the text around it reads.
 */
export function escapeControl(s: string): string {
  return s.replace(
    /[\u0000-\u001f\u007f-\u009f\u2028-\u202e\u2066-\u2069]|[\ud800-\udfff]/gu,
    (c) => {
      const code = c.codePointAt(0)!;
      if (code === 0x0a) return '\\n';
      if (code === 0x0d) return '\\r';
      if (code === 0x09) return '\\t';
      return code <= 0xff
        ? `\\x${code.toString(16).padStart(2, '0')}`
        : `\\u${code.toString(16).padStart(4, '0')}`;
    },
  );
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${UNITS[u]}`;
}

export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--:--';
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/**
 * Hide what usually carries a private tracker's passkey in URLs printed to the terminal: the
 * query string, and long token-like path segments (`/a1b2…/announce`).
 */
export function redactUrls(s: string): string {
  return s.replace(/\b(https?|udp):\/\/[^\s"'<>]+/gi, (match) => {
    // Punctuation right after a URL ("tracker URL: message") is not part of it.
    const trail = /[:,.;)\]]+$/.exec(match)?.[0] ?? '';
    const url = match.slice(0, match.length - trail.length);
    const q = url.indexOf('?');
    const base = q >= 0 ? url.slice(0, q) : url;
    const shown = base.replace(/\/[A-Za-z0-9_-]{16,}(?=\/|$)/g, '/…');
    return `${q >= 0 ? `${shown}?…` : shown}${trail}`;
  });
}
