import { readFileSync } from 'node:fs';

/** The package version (src/ and dist/ are both one level below package.json). */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

/** How tdl names itself: `created by` of the torrents it makes, `v` of its extension handshake. */
export const CLIENT_NAME = `tdl/${VERSION}`;
