// ACME accounts: one per CA directory, its key (ECDSA P-256) 0600 in acmed's state dir.
//   <stateDir>/accounts/<sha256(directory URL), 16 hex>/account-key.pem   the account key
//                                                      /account.json      directory and account URL
// A staging directory has another URL, hence another account and key: dry runs never touch the
// production account. On first use in a process a new key is registered; a key acmed already had
// is looked up (onlyReturnExisting, RFC 8555 section 7.3.1), registered again if the CA lost its
// state, and its contact is updated only when the configured address changed.
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import acme from 'acme-client';
import type { CaConfig, Config } from '../config/schema.ts';
import type { Logger } from '../proto/log.ts';
import { RpcError } from '../proto/errors.ts';
import { directoryUrlOf } from './directories.ts';
import { AcmedError, AcmeProblem, toAcmedError } from './errors.ts';

export interface Account {
  client: acme.Client;
  directoryUrl: string;
  accountUrl: string;
  created: boolean;
  ca: CaConfig;
}

const KEY_FILE = 'account-key.pem';
/** A rollover's new key, written before the CA switches so a crash in between cannot lose it. */
const NEXT_KEY_FILE = 'account-key.next.pem';

function newAccountKeyPem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
}

function writePrivateFile(path: string, data: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, data, { mode: 0o600, flag: 'w' });
  renameSync(tmp, path);
}

/** RFC 7638 JWK thumbprint: names an account key in logs without revealing anything. */
export function keyThumbprint(keyPem: string): string {
  const jwk = createPublicKey(keyPem).export({ format: 'jwk' });
  const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { e: jwk.e, kty: jwk.kty, n: jwk.n };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

export class AccountBook {
  private readonly accounts = new Map<string, Promise<Account>>();

  constructor(private readonly config: () => Config, private readonly stateDir: string, private readonly log: Logger) {}

  private caConfig(caName: string): CaConfig {
    const { cas } = this.config();
    const ca = Object.hasOwn(cas, caName) ? cas[caName] : undefined;
    if (!ca) {
      const defined = Object.keys(cas).join(', ');
      throw new RpcError(AcmedError.UNKNOWN_CA, `CA "${caName}" is not configured under cas (defined: ${defined})`);
    }
    return ca;
  }

  /**
   * After the CAs' config changed (email, EAB, directory): each account is looked up again at its
   * next use, as after a restart, so a changed contact is sent to the CA. The keys stay.
   */
  forgetAll(): void {
    this.accounts.clear();
  }

  private dirOf(directoryUrl: string): string {
    return join(this.stateDir, 'accounts', createHash('sha256').update(directoryUrl).digest('hex').slice(0, 16));
  }

  /** The registered account for a CA, registering it on first use (concurrent callers share one registration). */
  account(caName: string, staging: boolean): Promise<Account> {
    const ca = this.caConfig(caName);
    const directoryUrl = directoryUrlOf(caName, ca, staging);
    let pending = this.accounts.get(directoryUrl);
    if (!pending) {
      pending = this.register(ca, directoryUrl);
      this.accounts.set(directoryUrl, pending);
      pending.catch(() => this.accounts.delete(directoryUrl));
    }
    return pending;
  }

  private async register(ca: CaConfig, directoryUrl: string): Promise<Account> {
    const dir = this.dirOf(directoryUrl);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const keyPath = join(dir, KEY_FILE);
    let created = false;
    if (!existsSync(keyPath)) {
      writePrivateFile(keyPath, newAccountKeyPem());
      created = true;
    }
    await this.finishInterruptedRollover(directoryUrl, dir);
    const client = new acme.Client({
      directoryUrl,
      accountKey: readFileSync(keyPath),
      backoffAttempts: 1,
      ...(ca.eab ? { externalAccountBinding: { kid: ca.eab.kid, hmacKey: this.readEabKey(ca.eab.hmacKeyFile) } } : {}),
    });
    const registration = { termsOfServiceAgreed: true, ...(ca.email ? { contact: [`mailto:${ca.email}`] } : {}) };
    try {
      if (created) await client.createAccount(registration);
      else await this.findAccount(client, directoryUrl, registration);
    } catch (e) {
      throw toAcmedError(e, `registering the ACME account at ${directoryUrl}`);
    }
    const accountUrl = client.getAccountUrl();
    writeFileSync(join(dir, 'account.json'), `${JSON.stringify({ directoryUrl, accountUrl }, null, 2)}\n`, { mode: 0o600 });
    this.log.info({ directoryUrl, accountUrl, created }, 'ACME account ready');
    return { client, directoryUrl, accountUrl, created, ca };
  }

  /**
   * The account of a key acmed already had (a restart). A plain newAccount would not do: the CA
   * answers 200 for a known key, acme-client follows with an account update, and an update without
   * a contact is refused (Pebble: "Use POST-as-GET to retrieve account data instead of doing an
   * empty update"), so every order after a restart failed for a CA configured without an email.
   */
  private async findAccount(client: acme.Client, directoryUrl: string, registration: { termsOfServiceAgreed: boolean; contact?: string[] }): Promise<void> {
    let existing: Awaited<ReturnType<acme.Client['createAccount']>>;
    try {
      existing = await client.createAccount({ onlyReturnExisting: true });
    } catch (e) {
      if (!(e instanceof AcmeProblem && e.problem.type === 'urn:ietf:params:acme:error:accountDoesNotExist')) throw e;
      this.log.warn({ directoryUrl }, 'the CA does not know the account key (it lost its state?): registering the key again');
      await client.createAccount(registration);
      return;
    }
    const wanted = registration.contact;
    if (wanted && [...(existing.contact ?? [])].sort().join() !== [...wanted].sort().join()) await client.updateAccount({ contact: wanted });
  }

  private readEabKey(path: string): string {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch (e) {
      throw new RpcError(AcmedError.ACCOUNT, `cannot read the EAB HMAC key ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }

  /**
   * A next key left by a rollover that was interrupted: if the CA already knows it, the switch
   * happened and it becomes the key; otherwise the switch never happened and it is discarded.
   */
  private async finishInterruptedRollover(directoryUrl: string, dir: string): Promise<void> {
    const nextPath = join(dir, NEXT_KEY_FILE);
    if (!existsSync(nextPath)) return;
    const probe = new acme.Client({ directoryUrl, accountKey: readFileSync(nextPath) });
    try {
      await probe.createAccount({ onlyReturnExisting: true });
      renameSync(nextPath, join(dir, KEY_FILE));
      this.log.warn({ directoryUrl }, 'an interrupted account key rollover had completed at the CA: using the new key');
    } catch {
      rmSync(nextPath);
      this.log.warn({ directoryUrl }, 'an interrupted account key rollover had not reached the CA: keeping the old key');
    }
  }

  /** Replaces the account key (RFC 8555 section 7.3.5); orders in flight keep working with the client they hold. */
  async rollover(caName: string, staging: boolean): Promise<{ directoryUrl: string; accountUrl: string; keyThumbprint: string }> {
    const account = await this.account(caName, staging);
    const dir = this.dirOf(account.directoryUrl);
    const nextKey = newAccountKeyPem();
    writePrivateFile(join(dir, NEXT_KEY_FILE), nextKey);
    try {
      await account.client.updateAccountKey(nextKey);
    } catch (e) {
      rmSync(join(dir, NEXT_KEY_FILE), { force: true });
      throw toAcmedError(e, `rolling over the account key at ${account.directoryUrl}`);
    }
    renameSync(join(dir, NEXT_KEY_FILE), join(dir, KEY_FILE));
    const thumbprint = keyThumbprint(nextKey);
    this.log.info({ directoryUrl: account.directoryUrl, keyThumbprint: thumbprint }, 'ACME account key rolled over');
    return { directoryUrl: account.directoryUrl, accountUrl: account.accountUrl, keyThumbprint: thumbprint };
  }
}
