// certsep-acmed: the ACME client, the only certsep process that talks to a CA.
//
// Runs as its own unprivileged uid (certsep-acme) and may touch:
//  - its state dir <paths.stateDir>/acmed (0700, its own): one ACME account key (0600) and the
//    account URL per CA directory; nothing else it writes persists;
//  - the .well-known/acme-challenge dir of each configured http-01 webroot: token files, 0644
//    (the web server's workers read them), removed when the order is over, success or not;
//  - the network: HTTPS to the origins of the configured CA directories only (with each CA's
//    trust bundle), the configured http-01 listener ports (held for it by systemd or
//    certsep-supervisor and passed as fds 4…; bound by acmed itself only when run by hand, and
//    then only while an order needs one), DNS queries to the configured resolvers, RFC 2136
//    updates (nsupdate) to the configured DNS servers;
//  - keyd's socket, for key.current only: which key a certificate's CSR must carry;
//  - commands: the configured dns-01 hooks and nsupdate, as its own uid, without a shell;
//  - readable secrets: EAB HMAC key files and TSIG key files named in the config.
// It never sees a certificate's private key: it receives CSRs (public) and returns certificates.
// Callers (acmed/api.ts): deployd and admins order and ask for renewal windows; admins roll over keys.
import { inheritedListenFds } from '../proto/systemd.ts';
import { runDaemon } from '../runtime/daemon.ts';
import { AccountBook } from './accounts.ts';
import { acmedApi } from './api.ts';
import { answerOnHeldListeners } from './challenges/http-listener.ts';
import { createAcmedHandlers } from './handlers.ts';
import { LISTEN_STREAMS_FLAG, printListenStreams } from './listen-streams.ts';
import { OrderSlots } from './order-slots.ts';
import { caReachFor, installTransport, useCaReach } from './transport.ts';

if (process.argv[2] === LISTEN_STREAMS_FLAG) printListenStreams(process.argv.slice(3));

// Read before runDaemon takes the RPC socket (fd 3) and clears LISTEN_FDS: any further socket is
// an http-01 listener port that systemd or certsep-supervisor holds for acmed.
const inherited = inheritedListenFds();

await runDaemon({
  name: 'acmed',
  api: acmedApi,
  async start({ config, log, stateDir }) {
    installTransport();
    useCaReach(caReachFor(config()));
    const held = await answerOnHeldListeners(inherited.slice(1), inherited.length > 0);
    if (held.length > 0) log.info({ held }, 'answering http-01 on the listener ports held for acmed');
    const accounts = new AccountBook(config, stateDir, log);
    const slots = new OrderSlots(config().acme.concurrency);
    return {
      handlers: createAcmedHandlers(config, accounts, slots, log),
      // An edited config's trust bundles are read before it takes over: an unreadable one refuses
      // the edit, and the CAs keep the trust they had.
      prepareConfig: (next, previous) => {
        const nextReach = caReachFor(next);
        return () => {
          useCaReach(nextReach);
          slots.setLimit(next.acme.concurrency);
          if (JSON.stringify(next.cas) !== JSON.stringify(previous.cas)) accounts.forgetAll();
        };
      },
    };
  },
});
