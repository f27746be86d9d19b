/**
 * ed25519 key pairs for in-process ssh2 servers.
 *
 * ssh2's utils.generateKeyPairSync('ed25519') strips leading zero bytes from the
 * public key, so about 1 pair in 256 cannot be parsed back ("Malformed OpenSSH
 * private key"; mscdex/ssh2#1390, #1513). Tests that need a key draw again until
 * ssh2 itself can read both halves, so a 1/256 draw never fails a CI run.
 */
import { utils } from 'ssh2';

export function ed25519KeyPair(): { private: string; public: string } {
  for (let attempt = 0; attempt < 50; attempt++) {
    const pair = utils.generateKeyPairSync('ed25519');
    if (!(utils.parseKey(pair.private) instanceof Error) && !(utils.parseKey(pair.public) instanceof Error)) {
      return pair;
    }
  }
  throw new Error('ssh2 produced 50 unreadable ed25519 key pairs in a row');
}
