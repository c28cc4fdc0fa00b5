import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { azureusPrefix, makePeerId, PEER_ID_PREFIX } from '../../src/peer/peer-id.js';
import { CLIENT_NAME, VERSION } from '../../src/version.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

describe('peer id and client name', () => {
  it('come from the package version', () => {
    expect(VERSION).toBe(pkg.version);
    expect(CLIENT_NAME).toBe(`tdl/${pkg.version}`);
    expect(PEER_ID_PREFIX).toBe(azureusPrefix('TD', pkg.version));
  });

  it('writes the version Azureus-style, one character per number', () => {
    expect(azureusPrefix('TD', '0.1.0')).toBe('-TD0100-');
    expect(azureusPrefix('TD', '1.12.3')).toBe('-TD1C30-');
    expect(azureusPrefix('TD', '2.0.0-beta.1')).toBe('-TD2000-');
    expect(azureusPrefix('TD', '40.1')).toBe('-TDZ100-');
    expect(azureusPrefix('TD', 'x.y')).toBe('-TD0000-');
  });

  it('makes 20-byte ids that start with the prefix and differ', () => {
    const a = makePeerId();
    const b = makePeerId();
    expect(a.length).toBe(20);
    expect(a.toString('latin1').startsWith(PEER_ID_PREFIX)).toBe(true);
    expect(PEER_ID_PREFIX).toHaveLength(8);
    expect(a.equals(b)).toBe(false);
  });
});
