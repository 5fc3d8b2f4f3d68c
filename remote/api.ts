// The remote role's pledge: the one ssh forced command (`certsepctl remote-serve`) a central
// deployd reaches over OpenSSH, and everything it will do for that ssh key. Each method is
// forwarded to THIS host's keyd or privd, which act on THIS host's root-owned config: the central
// host names a certificate and hands over public material (a chain); it never names a path,
// command, unit, owner or mode, and never receives a private key (csr.create answers with a CSR
// and a key id; the key stays in this host's keyd).
//  - csr.create      keyd makes (or reuses) this host's key for the certificate; returns the CSR.
//  - deploy.install  privd verifies the chain against this host's key and config, installs it.
//  - deploy.check / deploy.reload / deploy.rollback   privd's checks, reloads and rollback, with
//                    this host's check commands and units.
//  - status          what privd has installed (public certificates only), so the central host
//                    can tell whether this host is due.
// Every call is audited here with the ssh key's fingerprint and the client's address.
import { keydApi } from '../keyd/api.ts';
import { privdApi } from '../privd/api.ts';
import { defineApi } from '../proto/api.ts';

const privd = privdApi.methods;

export const remoteApi = defineApi('remote', {
  'csr.create': { ...keydApi.methods['csr.create'], callers: ['remote'], privileged: true },
  'deploy.install': { ...privd['deploy.install'], callers: ['remote'], privileged: true },
  'deploy.check': { ...privd['deploy.check'], callers: ['remote'], privileged: true },
  'deploy.reload': { ...privd['deploy.reload'], callers: ['remote'], privileged: true },
  'deploy.rollback': { ...privd['deploy.rollback'], callers: ['remote'], privileged: true },
  status: { ...privd.status, callers: ['remote'], privileged: true },
});

/** The command deployd asks ssh to run; with the forced command in place it is only compared. */
export const REMOTE_SERVE_COMMAND = 'certsep-remote-serve';
