// acmed's four methods, each a thin call into the module that does the work.
import { certificateByName, type Config } from '../config/schema.ts';
import type { Logger } from '../proto/log.ts';
import { RpcError } from '../proto/errors.ts';
import type { OwnHandlers } from '../runtime/config-status.ts';
import type { AccountBook } from './accounts.ts';
import type { acmedApi } from './api.ts';
import { fetchRenewalInfo } from './ari.ts';
import { directoryUrlOf } from './directories.ts';
import { AcmedError } from './errors.ts';
import { issueCertificate } from './order.ts';
import type { OrderSlots } from './order-slots.ts';

export function createAcmedHandlers(
  currentConfig: () => Config,
  accounts: AccountBook,
  slots: OrderSlots,
  log: Logger,
): OwnHandlers<(typeof acmedApi)['methods']> {
  return {
    // An order reads the config in force once, at its start: the CA's profile, challenge and
    // preferred chain of one order come from one version of the file.
    'order.issue': (params) => issueCertificate({ config: currentConfig(), accounts, slots, log }, params),

    async 'renewal.info'({ cert, certPem, staging }) {
      const config = currentConfig();
      const certificate = certificateByName(config, cert);
      if (!certificate) throw new RpcError(AcmedError.UNKNOWN_CERT, `certificate "${cert}" is not in the config`);
      const ca = config.cas[certificate.ca]!;
      return fetchRenewalInfo(directoryUrlOf(certificate.ca, ca, staging), certPem, log);
    },

    async 'account.ensure'({ ca, staging }) {
      const account = await accounts.account(ca, staging);
      return { ca, directoryUrl: account.directoryUrl, accountUrl: account.accountUrl, created: account.created };
    },

    async 'account.rollover'({ ca, staging }) {
      return { ca, ...(await accounts.rollover(ca, staging)) };
    },
  };
}
