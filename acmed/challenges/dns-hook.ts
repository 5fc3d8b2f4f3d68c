// dns-01 through a sysadmin's command (in the spirit of certbot's manual hooks): it runs as
// acmed's uid, without a shell, with only PATH and the CERTSEP_* variables in its environment,
// once to present each TXT value and once to clean it up; then acmed polls the configured
// resolver until the record is visible.
import { execFile } from 'node:child_process';
import { RpcError } from '../../proto/errors.ts';
import { AcmedError } from '../errors.ts';
import { waitForTxt } from './dns-propagation.ts';
import { txtNameOf, type ChallengeAnswer, type ChallengeResponder } from './responder.ts';

const HOOK_TIMEOUT_MS = 120_000;
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface DnsHookConfig {
  command: readonly [string, ...string[]];
  resolver?: string | undefined;
  propagationTimeoutSeconds: number;
}

function runHook(command: readonly string[], action: 'present' | 'cleanup', answer: ChallengeAnswer): Promise<void> {
  const env = {
    PATH,
    CERTSEP_ACTION: action,
    CERTSEP_DOMAIN: answer.domain,
    CERTSEP_TXT_NAME: txtNameOf(answer.domain),
    CERTSEP_TXT_VALUE: answer.value,
  };
  return new Promise((resolve, reject) => {
    execFile(command[0]!, command.slice(1), { env, timeout: HOOK_TIMEOUT_MS, maxBuffer: 64 * 1024 }, (error, _stdout, stderr) => {
      if (!error) return resolve();
      const how = error.killed ? `was killed after ${HOOK_TIMEOUT_MS / 1000} s` : `failed (${error.code ?? error.signal})`;
      reject(new RpcError(AcmedError.CHALLENGE, `dns-01 hook ${command[0]} ${action} for ${answer.domain} ${how}: ${stderr.trim().slice(-500)}`));
    });
  });
}

export function dnsHookResponder(config: DnsHookConfig): ChallengeResponder {
  return {
    type: 'dns-01',
    async present(answer) {
      await runHook(config.command, 'present', answer);
      await waitForTxt(txtNameOf(answer.domain), answer.value, config.resolver, config.propagationTimeoutSeconds);
    },
    async remove(answer) {
      await runHook(config.command, 'cleanup', answer);
    },
  };
}
