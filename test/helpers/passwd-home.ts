/**
 * The user's passwd entry as `os.userInfo()` shows it to tdl, set by a test: for the cache
 * folder's fallback when HOME is not an absolute path. A test file mocks `node:os` with
 *
 *     vi.mock('node:os', async (original) =>
 *       (await import('../helpers/passwd-home.js')).osWithAccount(original));
 *
 * and sets `account.home`: undefined, the real entry; null, no entry; a path, that home.
 */
export const account: { home: string | null | undefined } = { home: undefined };

/** `node:os` whose userInfo answers as `account` says. */
export async function osWithAccount(
  importOriginal: <T>() => Promise<T>,
): Promise<Record<string, unknown>> {
  const real = await importOriginal<typeof import('node:os')>();
  const userInfo = ((...args: Parameters<typeof real.userInfo>) => {
    if (account.home === null) throw new Error('no passwd entry');
    const info = real.userInfo(...args);
    return account.home === undefined ? info : { ...info, homedir: account.home };
  }) as typeof real.userInfo;
  return { ...real, default: { ...real, userInfo }, userInfo };
}
