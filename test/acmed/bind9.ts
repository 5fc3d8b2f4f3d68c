// A real BIND 9 `named` for RFC 2136 tests: one primary zone on a free loopback port that accepts
// dynamic updates signed with a TSIG key, everything (config, zone, journal) in a scratch dir.
// No rndc channel (its default port 953 would collide between tests running at once).
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { freePort } from '../harness/ports.ts';
import { killTree, startDaemon, waitFor, waitForExit } from '../harness/proc.ts';
import { makeTempDir, removeTempDir } from '../harness/tmp.ts';

export interface Bind9 {
  port: number;
  zone: string;
  keyName: string;
  /** The TSIG key in BIND's key-file format (what nsupdate -k reads). */
  keyFileText: string;
  stop(): Promise<void>;
}

export async function startBind9(zone: string): Promise<Bind9> {
  const dir = makeTempDir('bind9');
  const port = await freePort({ udp: true });
  const keyName = 'certsep-test';
  const keyFileText = `key "${keyName}" {\n  algorithm hmac-sha256;\n  secret "${randomBytes(32).toString('base64')}";\n};\n`;
  writeFileSync(join(dir, 'tsig.key'), keyFileText, { mode: 0o600 });
  writeFileSync(join(dir, `${zone}.zone`), [
    '$TTL 60',
    `@ IN SOA ns.${zone}. hostmaster.${zone}. 1 60 60 600 60`,
    `@ IN NS ns.${zone}.`,
    'ns IN A 127.0.0.1',
    '',
  ].join('\n'));
  writeFileSync(join(dir, 'named.conf'), `
options {
  directory "${dir}";
  pid-file "${dir}/named.pid";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  allow-query { any; };
  session-keyfile "${dir}/session.key";
};
controls { };
include "${dir}/tsig.key";
zone "${zone}" {
  type primary;
  file "${dir}/${zone}.zone";
  allow-update { key "${keyName}"; };
};
`);
  const logPath = join(dir, 'named.log');
  const child: ChildProcess = startDaemon('named', ['-g', '-n', '1', '-c', join(dir, 'named.conf')], { logPath });
  try {
    await waitFor(() => {
      if (child.exitCode !== null) throw new Error(`named exited with ${child.exitCode}:\n${readFileSync(logPath, 'utf8')}`);
      return /all zones loaded/.test(readFileSync(logPath, 'utf8'));
    }, 15_000, 'named to load its zone');
  } catch (e) {
    await killTree(child.pid!, 'SIGKILL');
    removeTempDir(dir);
    throw e;
  }
  return {
    port,
    zone,
    keyName,
    keyFileText,
    async stop() {
      await killTree(child.pid!, 'SIGTERM');
      await waitForExit(child);
      removeTempDir(dir);
    },
  };
}
