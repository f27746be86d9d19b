// OpenSSH certificates for ssh2 1.17 (issue 15; src/agent/ssh/README.md, "Certificates").
// ssh2 never offers the *-cert-v01@openssh.com host-key algorithms and cannot verify a
// key-exchange signature made with a certified host key, nor sign a publickey login
// with the signature name a certificate needs. Four small, anchored edits to
// node_modules/ssh2 add exactly that; everything else about certificates (parsing them,
// the CA's signature, principals, validity, @revoked) is our own code in
// src/agent/ssh/certificates.ts. Idempotent; fails loudly when an anchor is missing
// (another ssh2 version), so a silent no-op can never ship. Runs before every agent
// build (package.json build:agent) and after `npm ci` (scripts/setup.sh).
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const MARK = '/* jrc: OpenSSH certificates */';
const require = createRequire(import.meta.url);
// `node scripts/patch-ssh2.mjs [SSH2_DIR]`: the installed ssh2 by default (a directory
// for tests of the patcher itself).
const root = process.argv[2] ?? path.dirname(require.resolve('ssh2/package.json'));
const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
if (version !== '1.17.0') {
  throw new Error(`scripts/patch-ssh2.mjs was written for ssh2 1.17.0, found ${version}: re-check its anchors`);
}

// The certificate algorithms we can verify (ssh-dss certificates are not offered).
const CERT_ALGOS = [
  'ssh-ed25519-cert-v01@openssh.com',
  'ecdsa-sha2-nistp256-cert-v01@openssh.com',
  'ecdsa-sha2-nistp384-cert-v01@openssh.com',
  'ecdsa-sha2-nistp521-cert-v01@openssh.com',
  'rsa-sha2-512-cert-v01@openssh.com',
  'rsa-sha2-256-cert-v01@openssh.com'
];
// 'rsa-sha2-256-cert-v01@openssh.com' -> 'rsa-sha2-256'; other names unchanged.
const BASE_ALGO =
  "function jrcCertBase(algo) { return typeof algo === 'string' && algo.endsWith('-cert-v01@openssh.com') ? algo.slice(0, -21) : algo; }";

const edits = {
  'lib/protocol/constants.js': [
    // Supported, not default: they are offered only when known_hosts has a
    // @cert-authority for the host (host-key-check.ts), as OpenSSH orders them.
    [
      "const SUPPORTED_SERVER_HOST_KEY = DEFAULT_SERVER_HOST_KEY.concat([\n  'ssh-dss',\n",
      `const SUPPORTED_SERVER_HOST_KEY = DEFAULT_SERVER_HOST_KEY.concat([ ${MARK}\n  ${CERT_ALGOS.map(a => `'${a}'`).join(', ')},\n  'ssh-dss',\n`
    ]
  ],
  'lib/protocol/kex.js': [
    [
      "const { parseDERKey } = require('./keyParser.js');\n",
      `const { parseDERKey } = require('./keyParser.js');\n${MARK}\n${BASE_ALGO}\n`
    ],
    // An rsa-sha2-*-cert algorithm comes with an ssh-rsa-cert host key blob.
    [
      "                  if (hostPubKeyType === 'ssh-rsa')\n                    break;\n",
      "                  if (hostPubKeyType === 'ssh-rsa')\n                    break;\n" +
        '                // FALLTHROUGH\n' +
        "                case 'rsa-sha2-256-cert-v01@openssh.com':\n" +
        "                case 'rsa-sha2-512-cert-v01@openssh.com':\n" +
        `                  if (hostPubKeyType === 'ssh-rsa-cert-v01@openssh.com') ${MARK}\n` +
        '                    break;\n'
    ],
    // The exchange hash is signed with the certified key: its plain algorithm name.
    [
      '        if (sigType !== negotiated.serverHostKey) {\n',
      '        if (sigType !== jrcCertBase(negotiated.serverHostKey)) {\n'
    ],
    [
      '              + `expected: ${negotiated.serverHostKey}`,\n',
      '              + `expected: ${jrcCertBase(negotiated.serverHostKey)}`,\n'
    ],
    // The certified key sits after the certificate's nonce, in the plain key's layout.
    [
      '          const name = bufferParser.readString(true);\n          const hostKey = this._hostKey.slice(bufferParser.pos());\n',
      `          let name = bufferParser.readString(true); ${MARK}\n` +
        "          if (typeof name === 'string' && name.endsWith('-cert-v01@openssh.com')) {\n" +
        '            bufferParser.readString();\n' +
        '            name = jrcCertBase(name);\n' +
        '          }\n' +
        '          const hostKey = this._hostKey.slice(bufferParser.pos());\n'
    ],
    [
      "        switch (this.negotiated.serverHostKey) {\n          case 'rsa-sha2-256': hashAlgo = 'sha256'; break;\n",
      "        switch (jrcCertBase(this.negotiated.serverHostKey)) {\n          case 'rsa-sha2-256': hashAlgo = 'sha256'; break;\n",
      'every' // the client's and the (unused) server's choice of hash
    ]
  ],
  'lib/protocol/Protocol.js': [
    // A publickey login with a certificate names the certificate algorithm for the
    // key, but the signature inside carries the plain algorithm (PROTOCOL.certkeys).
    [
      '    cbSign(packet, (signature) => {\n      signature = convertSignature(signature, keyType);\n',
      `    cbSign(packet, (signature) => { ${MARK}\n      const sigAlgo = jrcCertBase(keyAlgo);\n      const sigAlgoLen = Buffer.byteLength(sigAlgo);\n      signature = convertSignature(signature, jrcCertBase(keyType));\n`
    ],
    ['          + 4 + algoLen + 4 + sigLen\n      );\n', '          + 4 + sigAlgoLen + 4 + sigLen\n      );\n'],
    [
      '      writeUInt32BE(packet, 4 + algoLen + 4 + sigLen, p += pubKeyLen);\n\n      writeUInt32BE(packet, algoLen, p += 4);\n      packet.utf8Write(keyAlgo, p += 4, algoLen);\n\n      writeUInt32BE(packet, sigLen, p += algoLen);\n',
      '      writeUInt32BE(packet, 4 + sigAlgoLen + 4 + sigLen, p += pubKeyLen);\n\n      writeUInt32BE(packet, sigAlgoLen, p += 4);\n      packet.utf8Write(sigAlgo, p += 4, sigAlgoLen);\n\n      writeUInt32BE(packet, sigLen, p += sigAlgoLen);\n'
    ],
    ['const {\n  bufferCopy,\n', `${MARK}\n${BASE_ALGO}\nconst {\n  bufferCopy,\n`]
  ]
};

let changed = 0;
for (const [file, pairs] of Object.entries(edits)) {
  const full = path.join(root, file);
  let text = readFileSync(full, 'utf8');
  if (text.includes(MARK)) {
    continue;
  }
  for (const [from, to, every] of pairs) {
    const at = text.indexOf(from);
    if (every && at >= 0) {
      text = text.split(from).join(to);
      continue;
    }
    if (at < 0 || text.indexOf(from, at + 1) >= 0) {
      throw new Error(
        `patch-ssh2: anchor ${at < 0 ? 'not found' : 'not unique'} in ${file}: ${JSON.stringify(from.slice(0, 60))}`
      );
    }
    text = text.slice(0, at) + to + text.slice(at + from.length);
  }
  writeFileSync(full, text);
  changed++;
}
console.log(
  changed ? `patch-ssh2: certificate support added to ${changed} ssh2 files` : 'patch-ssh2: ssh2 already patched'
);
