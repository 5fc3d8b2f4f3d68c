// keyd's four operations. A certificate named on the wire is only a lookup key into keyd's own
// config (the one in force, read per request): paths are built from the config's entry, never
// from what a caller sent.
import type { CertificateConfig, Config } from '../config/schema.ts';
import { certificateByName } from '../config/schema.ts';
import type { Logger } from '../proto/log.ts';
import { RpcError } from '../proto/errors.ts';
import type { OwnHandlers } from '../runtime/config-status.ts';
import { KeydErrorCode, type keydApi, type KeyType } from './api.ts';
import { buildCsr } from './build-csr.ts';
import { generatePrivateKey } from './generate-key.ts';
import { readImportedKey } from './read-imported-key.ts';
import type { KeyStore } from './key-store.ts';

type KeydMethods = (typeof keydApi)['methods'];

export function createKeydHandlers(config: () => Config, store: KeyStore, log: Logger): OwnHandlers<KeydMethods> {
  const oneAtATime = serializePerKey();
  return {
    'csr.create': async ({ cert, keyType }) => {
      const certificate = configuredCertificate(config(), cert, keyType);
      // One request per certificate and key type at a time: two "reuse" requests must not both
      // find no key and make two, and "current" must name the key of the last CSR handed out.
      return oneAtATime(`${cert}/${keyType}`, async () => {
        const reused = certificate.keyPolicy === 'reuse' ? reusableKey(store, cert, keyType) : null;
        const key = reused?.key ?? (await generatePrivateKey(keyType));
        // The CSR is built and checked before the key is stored: a failure leaves the store as it was.
        const csrPem = await buildCsr(key, keyType, certificate.domains);
        const keyId = reused?.keyId ?? store.saveNewKey(cert, keyType, key);
        log.info({ cert, keyType, keyId, newKey: reused === null, names: certificate.domains.length }, 'CSR created');
        return { csrPem, keyId, newKey: reused === null };
      });
    },
    'key.export': async ({ cert, keyType, keyId }) => {
      configuredCertificate(config(), cert, keyType);
      return { keyPem: store.readKey(cert, keyType, keyId).pem, current: store.currentKeyId(cert, keyType) === keyId };
    },
    'key.current': async ({ cert, keyType }) => {
      configuredCertificate(config(), cert, keyType);
      // Behind any csr.create in flight for it: the answer names the key of the last CSR handed out.
      return oneAtATime(`${cert}/${keyType}`, async () => ({ keyId: store.currentKeyId(cert, keyType) }));
    },
    'key.import': async ({ cert, keyType, keyPem }) => {
      configuredCertificate(config(), cert, keyType);
      const key = readImportedKey(keyPem, keyType);
      // Same queue as csr.create: "current" must not flip between a CSR's key and this one mid-request.
      return oneAtATime(`${cert}/${keyType}`, async () => {
        const keyId = store.saveNewKey(cert, keyType, key);
        log.info({ cert, keyType, keyId }, 'key imported');
        return { keyId };
      });
    },
  };
}

function configuredCertificate(config: Config, cert: string, keyType: KeyType): CertificateConfig {
  const certificate = certificateByName(config, cert);
  if (!certificate) throw new RpcError(KeydErrorCode.UNKNOWN_CERT, `keyd's config has no certificate named "${cert}"`);
  if (!certificate.keyTypes.includes(keyType)) {
    throw new RpcError(KeydErrorCode.KEY_TYPE, `certificate "${cert}" is configured for key types ${certificate.keyTypes.join(', ')}, not ${keyType}`);
  }
  return certificate;
}

function reusableKey(store: KeyStore, cert: string, keyType: KeyType) {
  const keyId = store.currentKeyId(cert, keyType);
  return keyId === null ? null : store.readKey(cert, keyType, keyId);
}

/** Runs tasks with the same key one after another, tasks with different keys concurrently. */
function serializePerKey(): <T>(key: string, task: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<unknown>>();
  return (key, task) => {
    const previous = tails.get(key) ?? Promise.resolve();
    const run = previous.then(task);
    const tail = run.catch(() => undefined);
    tails.set(key, tail);
    void tail.then(() => {
      if (tails.get(key) === tail) tails.delete(key);
    });
    return run;
  };
}
