// The three programs netd runs, by absolute path so that PATH cannot substitute another, with
// argument arrays and stdin (execFile, never a shell), a time limit, and no environment beyond
// what they need. They inherit netd's one capability, CAP_NET_ADMIN, through the ambient set.
import { execFile } from 'node:child_process';

export const NFT = '/usr/sbin/nft';
export const UPNPC = '/usr/bin/upnpc';
export const IP = '/usr/sbin/ip';

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

const TOOL_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };

/** Runs a tool to completion; resolves with its exit status, rejects only if it could not run or timed out. */
export function runTool(file: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env: TOOL_ENV, timeout: opts.timeoutMs ?? 20_000, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') {
          const why = err.killed ? `did not finish within ${opts.timeoutMs ?? 20_000} ms` : err.message;
          reject(new Error(`${file} ${args.join(' ')}: ${why}`, { cause: err }));
          return;
        }
        resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
      },
    );
    child.stdin?.on('error', () => {
      // A tool that exits before reading its input: its exit status tells what happened.
    });
    child.stdin?.end(opts.input ?? '');
  });
}
