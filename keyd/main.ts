// certsep-keyd: makes and keeps certificates' private keys, and builds their CSRs.
//
// Runs as its own unprivileged uid (certsep-key) and may touch:
//  - its state dir <paths.stateDir>/keyd (0700, its own): the keys, one 0600 PKCS#8 file per
//    version; nothing else on disk is written (the audit file and socket belong to runDaemon);
//  - no network at all: its unit has PrivateNetwork=yes and it opens no sockets but its own;
//  - callers (keyd/api.ts): deployd gets CSRs (public material only); acmed asks which key is
//    current (a hash of its public key); uid 0 (privd) alone gets a private key, to install it.
//    acmed, netd and deployd can never read a key.
import { runDaemon } from '../runtime/daemon.ts';
import { keydApi } from './api.ts';
import { createKeydHandlers } from './handlers.ts';
import { KeyStore } from './key-store.ts';

await runDaemon({
  name: 'keyd',
  api: keydApi,
  async start({ config, log, stateDir }) {
    const store = KeyStore.open(stateDir, process.getuid!());
    return { handlers: createKeydHandlers(config, store, log) };
  },
});
