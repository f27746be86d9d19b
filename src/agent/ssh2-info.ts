/** Facts about the bundled ssh2 library, reported by the health route. */
import ssh2Package from 'ssh2/package.json';

import { ssh2HasCertificates } from './ssh/host-key-check';

export function ssh2Info(): { version: string; nativeCrypto: boolean; certificates: boolean } {
  // ssh2 loads its optional native binding in lib/protocol/crypto.js and falls back to
  // pure JS; the bundle never ships the binding, but report what actually happened.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const crypto = require('ssh2/lib/protocol/crypto.js') as { bindingAvailable?: boolean };
  return {
    version: ssh2Package.version,
    nativeCrypto: Boolean(crypto.bindingAvailable),
    certificates: ssh2HasCertificates()
  };
}
