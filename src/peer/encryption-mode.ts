/**
 * How connections are encrypted (`--encryption`), on its own so that the CLI can list the modes
 * without loading the peer modules:
 * - allow: we dial with the plain handshake, and with MSE (offering plaintext or RC4) a peer that
 *   hung up on it; incoming peers may use either;
 * - prefer: we dial with MSE first (offering plaintext or RC4), and plainly a peer that fails it;
 * - require: every connection is RC4-encrypted both ways; plain handshakes are refused.
 */
export const ENCRYPTION_MODES = ['allow', 'prefer', 'require'] as const;

export type EncryptionMode = (typeof ENCRYPTION_MODES)[number];
