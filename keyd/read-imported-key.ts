// A key handed to keyd by root (key.import) is checked before it is stored: keyd keeps only keys
// it could have generated itself, so everything downstream (CSRs, privd's install) can assume so.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { RpcError } from '../proto/errors.ts';
import { KeydErrorCode, type KeyType } from './api.ts';
import { keyTypeOf } from './generate-key.ts';

export function readImportedKey(keyPem: string, keyType: KeyType): KeyObject {
  let key: KeyObject;
  try {
    // No passphrase is given: an encrypted key fails here instead of prompting.
    key = createPrivateKey({ key: keyPem, format: 'pem' });
  } catch {
    throw new RpcError(KeydErrorCode.BAD_KEY, 'the key is not an unencrypted PEM private key (PKCS#8, SEC1 or PKCS#1)');
  }
  const actual = keyTypeOf(key);
  if (actual !== keyType) {
    const what = actual ?? describe(key);
    throw new RpcError(KeydErrorCode.BAD_KEY, `the key is ${what}, not ${keyType}`);
  }
  return key;
}

function describe(key: KeyObject): string {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa') return `an RSA key of ${details?.modulusLength} bits with exponent ${details?.publicExponent}, which certsep does not use`;
  if (key.asymmetricKeyType === 'ec') return `an EC key on curve ${details?.namedCurve}, which certsep does not use`;
  return `an ${key.asymmetricKeyType} key, which certsep does not use`;
}
