// http-01 through a web server that already serves <webroot>: the key authorization goes into
// <webroot>/.well-known/acme-challenge/<token>, world-readable (the server's workers run as
// another user), and is removed when the order is over.
import { mkdir, rm, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { RpcError } from '../../proto/errors.ts';
import { AcmedError } from '../errors.ts';
import type { ChallengeAnswer, ChallengeResponder } from './responder.ts';

export function webrootResponder(webroot: string): ChallengeResponder {
  const dir = join(webroot, '.well-known', 'acme-challenge');
  return {
    type: 'http-01',
    async present(answer: ChallengeAnswer) {
      const path = join(dir, answer.token);
      try {
        await mkdir(dir, { recursive: true, mode: 0o755 });
        await writeFile(path, answer.value, { mode: 0o644 });
        await chmod(path, 0o644); // the umask may have taken read bits away
      } catch (e) {
        throw new RpcError(AcmedError.CHALLENGE, `cannot write the http-01 challenge file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    },
    async remove(answer: ChallengeAnswer) {
      await rm(join(dir, answer.token), { force: true });
    },
  };
}
