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

const silent: Log = () => {};

/** The logger of `namespace` (`tdl:<module>`); a no-op unless DEBUG is set. */
export function logger(namespace: string): Log {
  return createDebug ? createDebug(namespace) : silent;
}
