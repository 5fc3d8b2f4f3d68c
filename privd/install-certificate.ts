// deploy.install: fetch the key, verify chain and key against privd's own config, then replace
// every target's files as one pending run (install-targets.ts). Every check happens before the
// first write; a failure after it rolls the whole run back before it is reported.
import { randomBytes } from 'node:crypto';
import type { CertificateConfig, Config } from '../config/schema.ts';
import type { KeyType } from '../keyd/api.ts';
import { RpcError } from '../proto/errors.ts';
import { PrivdErrorCode } from './api.ts';
import { keyTypeSuffix } from './certificate-files.ts';
import { fetchKey } from './fetch-key.ts';
import { type InstallStores, planTargetFiles, recordInJournal, replaceTargetFiles } from './install-targets.ts';
import type { RunRecord } from './journal.ts';
import { rollBackRun } from './roll-back-run.ts';
import { trustAnchorsOf } from './trust-anchors.ts';
import { verifyChain } from './verify-chain.ts';

export interface InstallRequest {
  cert: CertificateConfig;
  keyType: KeyType;
  chainPem: string;
  keyId: string;
}

export interface InstallOutcome {
  run: RunRecord;
  version: number;
  serial: string;
  notAfter: Date;
  changedTargets: string[];
}

export async function installCertificate(config: Config, stores: InstallStores, req: InstallRequest, onRollback: (run: RunRecord, why: string) => void): Promise<InstallOutcome> {
  const { cert, keyType } = req;
  if (!cert.keyTypes.includes(keyType)) {
    throw new RpcError(PrivdErrorCode.KEY_TYPE, `${cert.name} is configured for ${cert.keyTypes.join(' and ')}, not ${keyType}`);
  }
  const { keyPem, key } = await fetchKey(config, cert.name, keyType, req.keyId);
  const ca = config.cas[cert.ca]!;
  const policy = { anchors: () => trustAnchorsOf(cert.ca, ca), maxLifetimeDays: ca.maxLifetimeDays };
  const chain = verifyChain(req.chainPem, key, cert.domains, policy);
  const material = { ...chain, keyPem };
  const planned = planTargetFiles(cert, keyType, material);

  const suffix = keyTypeSuffix(cert, keyType);
  const run: RunRecord = stores.journal.runOf(cert.name) ?? {
    runId: randomBytes(8).toString('hex'),
    cert: cert.name,
    state: 'installing',
    startedAt: new Date().toISOString(),
    versions: {},
    files: [],
  };
  const version = run.versions[keyType]?.version ?? stores.lineage.nextVersion(cert.name, suffix);
  run.versions[keyType] = { version, suffix };
  try {
    recordInJournal(stores, run, planned);
    stores.lineage.writeVersion(cert.name, suffix, version, material);
    replaceTargetFiles(stores, run, planned);
  } catch (e) {
    const why = `install of ${cert.name} (${keyType}) failed: ${(e as Error).message}`;
    rollBackRun(stores, run);
    onRollback(run, why);
    throw e;
  }
  return { run, version, serial: chain.serial, notAfter: chain.notAfter, changedTargets: [...new Set(planned.map((f) => f.dir))] };
}
