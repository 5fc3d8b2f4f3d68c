// Fresh private keys for certificates, and the facts keyd checks about a key it reads back.
import { createHash, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { KeyType } from './api.ts';

const generateKeyPairAsync = promisify(generateKeyPair);

// RFC 8446 4.2.3 / CA/B Baseline Requirements 6.1.5: P-256 and P-384 curves; RSA of at least
// 2048 bits with e = 65537.
const EC_CURVES = { 'ec-p256': 'prime256v1', 'ec-p384': 'secp384r1' } as const;
const RSA_BITS = { 'rsa-2048': 2048, 'rsa-3072': 3072, 'rsa-4096': 4096 } as const;
const RSA_PUBLIC_EXPONENT = 0x10001;

/** Generates a new key pair off the event loop (RSA-4096 takes seconds; other requests go on). */
export async function generatePrivateKey(keyType: KeyType): Promise<KeyObject> {
  if (keyType === 'ec-p256' || keyType === 'ec-p384') {
    const { privateKey } = await generateKeyPairAsync('ec', { namedCurve: EC_CURVES[keyType] });
    return privateKey;
  }
  const { privateKey } = await generateKeyPairAsync('rsa', { modulusLength: RSA_BITS[keyType], publicExponent: RSA_PUBLIC_EXPONENT });
  return privateKey;
}

/** The key's DER SubjectPublicKeyInfo: what a CSR carries and what a key id is computed from. */
export function spkiOf(key: KeyObject): Buffer {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return publicKey.export({ type: 'spki', format: 'der' });
}

/** sha256 of the SPKI: names a key version in paths and on the wire without revealing the key. */
export function keyIdOf(key: KeyObject): string {
  return createHash('sha256').update(spkiOf(key)).digest('hex');
}

/** Which of our key types a key is, or null: a key read back must still be what the config asks. */
export function keyTypeOf(key: KeyObject): KeyType | null {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec') {
    const curve = details?.namedCurve;
    if (curve === EC_CURVES['ec-p256']) return 'ec-p256';
    if (curve === EC_CURVES['ec-p384']) return 'ec-p384';
    return null;
  }
  if (key.asymmetricKeyType === 'rsa' && details?.publicExponent === BigInt(RSA_PUBLIC_EXPONENT)) {
    for (const [keyType, bits] of Object.entries(RSA_BITS)) if (details.modulusLength === bits) return keyType as KeyType;
  }
  return null;
}
