declare module 'ssh2/lib/protocol/crypto.js';
