// A CSR with the right names is not enough: whoever holds its key could use the certificate the CA
// signs. For a certificate of this host, acmed orders only for the key keyd holds now for it and
// that key type (keyd's key.current, which only acmed may ask), so a compromised deployd that sends
// a CSR for a key of its own gets E_CSR_NOT_KEYD, recorded in acmed's audit trail, and no order.
//
// A certificate of remote hosts (its `hosts:`) is keyed by each host's own keyd, which acmed cannot
// ask: that CSR reaches acmed over deployd's ssh session, so for those names the central deployd is
// trusted to hand over the host's CSR (see "What the central host is trusted with" in README.md).
import type { CertificateConfig, Config, KeyType } from '../config/schema.ts';
import { keydApi } from '../keyd/api.ts';
import { SharedConnection } from '../proto/client.ts';
import type { Logger } from '../proto/log.ts';
import { RpcError } from '../proto/errors.ts';
import { socketPathOf } from '../runtime/daemon.ts';
import { AcmedError } from './errors.ts';

const KEYD_TIMEOUT_MS = 30_000;

// Every order asks keyd, up to acme.concurrency (64) of them at once and more waiting for a slot:
// one connection for all of them, within keyd's per-uid connection limit.
const keydConnections = new Map<string, SharedConnection<(typeof keydApi)['methods']>>();

function keydAt(socketPath: string): SharedConnection<(typeof keydApi)['methods']> {
  let connection = keydConnections.get(socketPath);
  if (!connection) {
    connection = new SharedConnection(keydApi, socketPath, { timeoutMs: KEYD_TIMEOUT_MS });
    keydConnections.set(socketPath, connection);
  }
  return connection;
}

/** Throws E_CSR_NOT_KEYD unless keyId (the CSR's key) is keyd's current key for the certificate and key type. */
export async function assertKeydHoldsKey(
  config: Config, certificate: CertificateConfig, keyType: KeyType, keyId: string, log: Logger,
): Promise<void> {
  const cert = certificate.name;
  if (certificate.hosts.length > 0) {
    const why = "ordering for a remote host's key, vouched for by deployd";
    log.info({ cert, keyType, keyId, hosts: certificate.hosts }, why);
    return;
  }
  let current: string | null;
  try {
    ({ keyId: current } = await keydAt(socketPathOf(config, 'keyd')).call('key.current', { cert, keyType }));
  } catch (e) {
    const err = e instanceof RpcError ? e : new RpcError('E_UNAVAILABLE', (e as Error).message);
    const why = `cannot ask keyd which key certificate "${cert}" has, so nothing was ordered`;
    throw new RpcError(err.code, `${why}: ${err.message}`);
  }
  if (current !== keyId) {
    const held = current === null ? 'keyd holds no such key yet' : `keyd's current key is ${current}`;
    throw new RpcError(
      AcmedError.CSR_NOT_KEYD,
      `refusing the CSR for certificate "${cert}": its key ${keyId} is not the ${keyType} key keyd holds for ` +
        `certificate "${cert}" (${held}); only a CSR keyd just made is ordered, and nothing was ordered`,
    );
  }
}
