/**
 * Debug logging, one namespace per module (`DEBUG=tdl:*`, see README). The `debug` package is
 * loaded only when DEBUG is set: importing it costs every run about 10–20 ms of CPU at start-up,
 * and only a run that asks for the log prints one.
 */
export type Log = (formatter: unknown, ...args: unknown[]) => void;

// NO_COLOR (no-color.org) turns the logs' colours off as DEBUG_COLORS=no does; debug reads
// that when it loads.
if (process.env['DEBUG'] && process.env['NO_COLOR'] && process.env['DEBUG_COLORS'] === undefined) {
  process.env['DEBUG_COLORS'] = 'no';
}
const createDebug = process.env['DEBUG'] ? (await import('debug')).default : null;
// Log lines carry what peers, trackers and torrents said (a failure reason, a name): `%s`
// writes it with its control characters escaped, so that no escape sequence reaches the
// terminal (the messages tdl prints do the same, cli/format.ts).
if (createDebug) createDebug.formatters['s'] = (v: unknown) => logText(v);

/** `v` as text with C0 and C1 control characters (ESC among them) written as `\xNN`. */
export function logText(v: unknown): string {
  return String(v).replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

const silent: Log = () => {};

/** The logger of `namespace` (`tdl:<module>`); a no-op unless DEBUG is set. */
export function logger(namespace: string): Log {
  return createDebug ? createDebug(namespace) : silent;
}
