// A leaf for renewal-information tests: its issuer has a known key identifier and its serial has
// its high bit set, so the RFC 9773 certID acmed must ask for is known in advance.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../harness/proc.ts';

const ISSUER_KEY_ID = '0102030405060708090a0b0c0d0e0f1011121314';
// High bit set: its DER INTEGER contents carry a leading 00.
const SERIAL = '8001020304050607';
export const EXPECTED_CERT_ID = `${Buffer.from(ISSUER_KEY_ID, 'hex').toString('base64url')}.${Buffer.from(`00${SERIAL}`, 'hex').toString('base64url')}`;

async function openssl(dir: string, args: string[]): Promise<void> {
  const run = await runCommand('openssl', args, { cwd: dir });
  assert.equal(run.code, 0, run.stderr);
}

/** A leaf whose issuer has a known key identifier and whose serial has its high bit set. */
export async function makeLeaf(dir: string): Promise<string> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(dir, ['req', '-x509', ...ec, '-keyout', 'issuer.key', '-out', 'issuer.pem', '-subj', '/CN=ARI test issuer',
    '-addext', `subjectKeyIdentifier=${ISSUER_KEY_ID}`, '-addext', 'basicConstraints=critical,CA:TRUE']);
  await openssl(dir, ['req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=ari.example.com']);
  writeFileSync(join(dir, 'leaf.ext'), 'authorityKeyIdentifier=keyid\nsubjectAltName=DNS:ari.example.com\n');
  await openssl(dir, ['x509', '-req', '-in', 'leaf.csr', '-CA', 'issuer.pem', '-CAkey', 'issuer.key', '-set_serial', `0x${SERIAL}`,
    '-extfile', 'leaf.ext', '-out', 'leaf.pem', '-days', '30']);
  return readFileSync(join(dir, 'leaf.pem'), 'utf8');
}
