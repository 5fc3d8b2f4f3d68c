// certsep-acmed: the ACME client, the only certsep process that talks to a CA.
//
// Runs as its own unprivileged uid (certsep-acme) and may touch:
//  - its state dir <paths.stateDir>/acmed (0700, its own): one ACME account key (0600) and the
//    account URL per CA directory; nothing else it writes persists;
//  - the .well-known/acme-challenge dir of each configured http-01 webroot: token files, 0644
//    (the web server's workers read them), removed when the order is over, success or not;
//  - the network: HTTPS to the configured CA directories (with each CA's trust bundle), a
//    listener on the configured http-01 address/port only while an order needs it, DNS queries
//    to the configured resolvers, RFC 2136 updates (nsupdate) to the configured DNS servers;
//  - commands: the configured dns-01 hooks and nsupdate, as its own uid, without a shell;
//  - readable secrets: EAB HMAC key files and TSIG key files named in the config.
// It never sees a certificate's private key: it receives CSRs (public) and returns certificates.
// Callers (acmed/api.ts): deployd and admins order and ask for renewal windows; admins roll over keys.
import { runDaemon } from '../runtime/daemon.ts';
import { AccountBook } from './accounts.ts';
import { acmedApi } from './api.ts';
import { createAcmedHandlers } from './handlers.ts';
import { OrderSlots } from './order-slots.ts';
import { installTransport, trustAgentsFor, useTrustAgents } from './transport.ts';

await runDaemon({
  name: 'acmed',
  api: acmedApi,
  async start({ config, log, stateDir }) {
    installTransport();
    useTrustAgents(trustAgentsFor(config()));
    const accounts = new AccountBook(config, stateDir, log);
    const slots = new OrderSlots(config().acme.concurrency);
    return {
      handlers: createAcmedHandlers(config, accounts, slots, log),
      // An edited config's trust bundles are read before it takes over: an unreadable one refuses
      // the edit, and the CAs keep the trust they had.
      prepareConfig: (next, previous) => {
        const agents = trustAgentsFor(next);
        return () => {
          useTrustAgents(agents);
          slots.setLimit(next.acme.concurrency);
          if (JSON.stringify(next.cas) !== JSON.stringify(previous.cas)) accounts.forgetAll();
        };
      },
    };
  },
});
