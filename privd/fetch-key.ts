// The private key comes from keyd, over keyd's socket, as uid 0 (keyd hands keys to root alone).
// privd checks that it got the key it asked for (the id is the sha256 of its public key) and that
// it is keyd's current key for the certificate: keyd keeps a few older keys, and a chain issued
// for one of them (replayed by a compromised deployd) must not replace the current certificate.
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import type { Config } from '../config/schema.ts';
import { keydApi, type KeyType } from '../keyd/api.ts';
import { callOnce } from '../proto/client.ts';
import { RpcError, toRpcError } from '../proto/errors.ts';
import { socketPathOf } from '../runtime/daemon.ts';
import { PrivdErrorCode } from './api.ts';

export interface FetchedKey {
  keyPem: string;
  key: KeyObject;
}

export async function fetchKey(config: Config, cert: string, keyType: KeyType, keyId: string): Promise<FetchedKey> {
  let keyPem: string;
  let current: boolean;
  try {
    const socket = socketPathOf(config, 'keyd');
    const params = { cert, keyType, keyId };
    ({ keyPem, current } = await callOnce(keydApi, socket, 'key.export', params, { timeoutMs: 30_000 }));
  } catch (e) {
    const err = toRpcError(e);
    throw new RpcError(PrivdErrorCode.KEY_UNAVAILABLE, `keyd did not hand over key ${keyId.slice(0, 12)}… of ${cert} (${keyType}): ${err.code} ${err.message}`);
  }
  if (!current) {
    throw new RpcError(
      PrivdErrorCode.KEY_NOT_CURRENT,
      `key ${keyId.slice(0, 12)}… is not keyd's current key of ${cert} (${keyType}): ` +
        'the chain is for an older key; order a new one',
    );
  }
  const key = createPrivateKey(keyPem);
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  if (createHash('sha256').update(spki).digest('hex') !== keyId) {
    throw new RpcError(PrivdErrorCode.KEY_MISMATCH, `keyd returned a key whose id is not ${keyId}`);
  }
  return { keyPem, key };
}
