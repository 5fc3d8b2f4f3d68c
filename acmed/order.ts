// One certificate order, top to bottom (RFC 8555 section 7.4): check the CSR against the config
// and that it carries the key keyd holds now, newOrder (with the CA's profile, and `replaces` for a
// renewal when the CA speaks ARI), check that every authorization is for an ordered name, put every
// challenge answer in place, tell the CA, wait for the order to become ready, take every answer
// away again whatever happened, finalize with keyd's CSR, download the chains.
import { X509Certificate } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type acme from 'acme-client';
import { certificateByName, type CertificateConfig, type ChallengeConfig, type Config } from '../config/schema.ts';
import type { Logger } from '../proto/log.ts';
import { RpcError } from '../proto/errors.ts';
import type { AccountBook } from './accounts.ts';
import type { IssueResult } from './api.ts';
import { ariCertId, renewalInfoUrlOf } from './ari.ts';
import { chooseChain, downloadChains, splitPem } from './chains.ts';
import { dnsHookResponder } from './challenges/dns-hook.ts';
import { listenerResponder } from './challenges/http-listener.ts';
import type { ChallengeAnswer, ChallengeResponder } from './challenges/responder.ts';
import { rfc2136Responder } from './challenges/rfc2136.ts';
import { webrootResponder } from './challenges/webroot.ts';
import { checkCsr } from './csr-check.ts';
import { assertAuthorizationsAreOrdered } from './ordered-identifiers.ts';
import { assertKeydHoldsKey } from './csr-from-keyd.ts';
import { AcmedError, problemToRpcError, toAcmedError, type Problem } from './errors.ts';
import type { OrderSlots } from './order-slots.ts';

type KeyType = CertificateConfig['keyTypes'][number];

/** How long an order may wait for the CA (validation, then issuance). */
const ORDER_DEADLINE_MS = 10 * 60_000;
/** RFC 8555 section 8.3/8.4: tokens are base64url; anything else could escape the webroot. */
const TOKEN = /^[A-Za-z0-9_-]{16,256}$/;

export interface IssueRequest {
  cert: string;
  csrPem: string;
  keyType: KeyType;
  replaces?: string | undefined;
  staging: boolean;
}

export interface OrderDeps {
  config: Config;
  accounts: AccountBook;
  slots: OrderSlots;
  log: Logger;
}

export function responderFor(challenge: ChallengeConfig): ChallengeResponder {
  switch (challenge.type) {
    case 'http-01-webroot': return webrootResponder(challenge.webroot);
    case 'http-01-listener': return listenerResponder(challenge.address, challenge.port);
    case 'dns-01-hook': return dnsHookResponder(challenge);
    case 'dns-01-rfc2136': return rfc2136Responder(challenge);
  }
}

/**
 * Polls the order until it leaves `pending`/`processing`, with growing pauses. The first pause is
 * short because a CA often settles within tens of milliseconds (issuance after finalize, a local
 * CA's validation): a fixed 200 ms start cost every order 400 ms of sleeping. Growing by 1.5 keeps
 * a slow CA at about three more requests per order over its first ten seconds.
 */
async function waitForOrder(client: acme.Client, order: acme.Order, deadline: number): Promise<acme.Order> {
  let pauseMs = 50;
  while (order.status === 'pending' || order.status === 'processing') {
    if (Date.now() + pauseMs > deadline) throw new RpcError(AcmedError.CA, `the CA left the order ${order.status} for ${ORDER_DEADLINE_MS / 60_000} minutes`);
    await sleep(pauseMs);
    pauseMs = Math.min(pauseMs * 1.5, 5_000);
    order = await client.getOrder(order);
  }
  return order;
}

/** The order's authorizations, each checked to be for one of the order's names. */
async function orderedAuthorizations(
  client: acme.Client, order: acme.Order, names: readonly string[],
): Promise<acme.Authorization[]> {
  const authorizations = await client.getAuthorizations(order);
  assertAuthorizationsAreOrdered(authorizations, names);
  return authorizations;
}

/** Why an order became invalid: the first failed challenge's problem, else the order's own. */
async function invalidOrderError(client: acme.Client, order: acme.Order, names: readonly string[]): Promise<RpcError> {
  for (const authz of await orderedAuthorizations(client, order, names)) {
    const failed = authz.challenges.find((c) => (c as { error?: Problem }).error);
    const problem = (failed as { error?: Problem } | undefined)?.error;
    if (problem) return problemToRpcError(problem, `validating ${authz.identifier.value}`);
  }
  return problemToRpcError((order.error as Problem | undefined) ?? { detail: 'the order became invalid' }, 'the order failed');
}

async function answerChallenges(
  client: acme.Client, order: acme.Order, names: readonly string[], responder: ChallengeResponder, log: Logger,
): Promise<acme.Order> {
  // Every authorization is checked, pending or not, before the first answer is presented.
  const authorizations = (await orderedAuthorizations(client, order, names)).filter((a) => a.status === 'pending');
  const presented: ChallengeAnswer[] = [];
  try {
    // allSettled, not all: removal must not start while another answer is still being presented.
    const settled = await Promise.allSettled(authorizations.map(async (authz) => {
      const challenge = authz.challenges.find((c) => c.type === responder.type);
      if (!challenge) throw new RpcError(AcmedError.CA, `the CA offers no ${responder.type} challenge for ${authz.identifier.value}`);
      if (!TOKEN.test(challenge.token)) throw new RpcError(AcmedError.CA, `the CA sent a malformed challenge token for ${authz.identifier.value}`);
      const answer = { domain: authz.identifier.value, token: challenge.token, value: await client.getChallengeKeyAuthorization(challenge) };
      presented.push(answer);
      await responder.present(answer);
      return challenge;
    }));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const challenges = settled.map((r) => (r as PromiseFulfilledResult<Parameters<acme.Client['completeChallenge']>[0]>).value);
    // Only once every answer is in place: a wildcard and its apex share one TXT name.
    await Promise.all(challenges.map((challenge) => client.completeChallenge(challenge)));
    return await waitForOrder(client, order, Date.now() + ORDER_DEADLINE_MS);
  } finally {
    const removals = await Promise.allSettled(presented.map((answer) => responder.remove(answer)));
    removals.forEach((r, i) => {
      if (r.status === 'rejected') log.error({ domain: presented[i]!.domain, err: (r.reason as Error).message }, 'could not remove a challenge answer; remove it by hand');
    });
  }
}

async function orderOnce(deps: OrderDeps, certificate: CertificateConfig, names: string[], request: IssueRequest): Promise<IssueResult> {
  const account = await deps.accounts.account(certificate.ca, request.staging);
  const { client } = account;
  // One account serves every CA entry with the same directory URL; profile and preferred chain
  // belong to the certificate's own entry, not to whichever entry registered the account first.
  const ca = deps.config.cas[certificate.ca]!;
  const replaces = request.replaces !== undefined && (await renewalInfoUrlOf(account.directoryUrl)) !== null ? ariCertId(request.replaces) : undefined;
  // acme-client passes unknown newOrder fields through (profile: draft-aaron-acme-profiles; replaces: RFC 9773).
  const newOrder = {
    identifiers: names.map((value) => ({ type: 'dns', value })),
    ...(ca.profile ? { profile: ca.profile } : {}),
    ...(replaces ? { replaces } : {}),
  } as Parameters<acme.Client['createOrder']>[0];
  let order = await client.createOrder(newOrder);
  const created = { cert: certificate.name, order: (order as { url?: string }).url, names };
  deps.log.info({ ...created, ...(ca.profile ? { profile: ca.profile } : {}) }, 'order created');
  if (order.status === 'pending') {
    order = await answerChallenges(client, order, names, responderFor(certificate.challenge!), deps.log);
  }
  if (order.status === 'invalid') throw await invalidOrderError(client, order, names);
  if (order.status === 'ready') order = await client.finalizeOrder(order, request.csrPem);
  order = await waitForOrder(client, order, Date.now() + ORDER_DEADLINE_MS);
  if (order.status !== 'valid' || !order.certificate) throw problemToRpcError((order.error as Problem | undefined) ?? { detail: `the order ended ${order.status}` }, 'finalizing the order');
  const { chosen, others } = chooseChain(await downloadChains(client, order.certificate), ca.preferredChain);
  const leaf = new X509Certificate(splitPem(chosen)[0]!);
  return {
    chainPem: chosen,
    alternates: others,
    certUrl: order.certificate,
    notBefore: new Date(leaf.validFrom).toISOString(),
    notAfter: new Date(leaf.validTo).toISOString(),
  };
}

export async function issueCertificate(deps: OrderDeps, request: IssueRequest): Promise<IssueResult> {
  const certificate = certificateByName(deps.config, request.cert);
  if (!certificate) throw new RpcError(AcmedError.UNKNOWN_CERT, `certificate "${request.cert}" is not in the config`);
  if (!certificate.challenge) throw new RpcError(AcmedError.CHALLENGE, `certificate "${request.cert}" has no challenge in this host's config: another host orders it`);
  const { names, keyId } = await checkCsr(certificate, request.csrPem, request.keyType);
  await assertKeydHoldsKey(deps.config, certificate, request.keyType, keyId, deps.log);
  return deps.slots.run(async () => {
    try {
      return await orderOnce(deps, certificate, names, request);
    } catch (e) {
      throw toAcmedError(e, `ordering certificate "${certificate.name}"`);
    }
  });
}
