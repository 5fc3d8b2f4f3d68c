// dns-01 through an RFC 2136 dynamic update signed with a TSIG key (RFC 8945), sent by nsupdate
// from bind9-utils. nsupdate rather than our own DNS UPDATE encoder: it is the reference client,
// signs and verifies TSIG, falls back to TCP, and reads BIND's key file format, so acmed carries
// no DNS wire or MAC code of its own. Its script comes over stdin; every value in it is checked
// first (names from the config are LDH, the TXT value is base64url), so nothing can inject a
// second command.
import { spawn } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { RpcError } from '../../proto/errors.ts';
import { AcmedError } from '../errors.ts';
import { waitForTxt } from './dns-propagation.ts';
import { txtNameOf, type ChallengeAnswer, type ChallengeResponder } from './responder.ts';

const NSUPDATE_TIMEOUT_MS = 60_000;
const PROPAGATION_TIMEOUT_S = 60;
const TTL = 60;
const SAFE_NAME = /^[a-z0-9_.-]+$/;
const SAFE_VALUE = /^[A-Za-z0-9_-]+$/;

export interface Rfc2136Config {
  server: string;
  port: number;
  zone: string;
  tsigKeyFile: string;
}

function nsupdate(keyFile: string, script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsupdate', ['-k', keyFile, '-v'], { env: { PATH: '/usr/bin:/bin' }, stdio: ['pipe', 'ignore', 'pipe'], timeout: NSUPDATE_TIMEOUT_MS });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('error', (e) => reject(new RpcError(AcmedError.CHALLENGE, `cannot run nsupdate (install bind9-utils): ${e.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new RpcError(AcmedError.CHALLENGE, `nsupdate failed (${code ?? signal}): ${stderr.trim().slice(-500)}`));
    });
    child.stdin.end(script);
  });
}

function updateScript(config: Rfc2136Config, verb: 'add' | 'delete', answer: ChallengeAnswer): string {
  const name = txtNameOf(answer.domain);
  if (!SAFE_NAME.test(name) || !SAFE_NAME.test(config.zone) || !SAFE_VALUE.test(answer.value)) {
    throw new RpcError(AcmedError.CHALLENGE, `refusing a DNS update with unexpected characters for ${answer.domain}`);
  }
  const record = verb === 'add' ? `update add ${name}. ${TTL} IN TXT "${answer.value}"` : `update delete ${name}. IN TXT "${answer.value}"`;
  return [`server ${config.server} ${config.port}`, `zone ${config.zone}.`, record, 'send', ''].join('\n');
}

export function rfc2136Responder(config: Rfc2136Config): ChallengeResponder {
  return {
    type: 'dns-01',
    async present(answer) {
      await nsupdate(config.tsigKeyFile, updateScript(config, 'add', answer));
      // The primary answers for its zone at once; secondaries are the CA's to wait for (NOTIFY).
      const address = isIP(config.server) ? config.server : (await lookup(config.server)).address;
      const resolver = isIP(address) === 6 ? `[${address}]:${config.port}` : `${address}:${config.port}`;
      await waitForTxt(txtNameOf(answer.domain), answer.value, resolver, PROPAGATION_TIMEOUT_S);
    },
    async remove(answer) {
      await nsupdate(config.tsigKeyFile, updateScript(config, 'delete', answer));
    },
  };
}
