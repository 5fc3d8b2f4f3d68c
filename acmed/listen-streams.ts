// `certsep-acmed --systemd-listen-streams [--config FILE]`, run by install: the ListenStream= lines
// of the http-01 listeners the config names, for a drop-in of certsep-acmed.socket, so that
// systemd holds those ports for acmed (see challenges/http-listener.ts). Nothing else is read.
import { parseArgs } from 'node:util';
import { defaultConfigPath, loadConfig } from '../config/load.ts';
import { EXIT_CONFIG } from '../runtime/daemon.ts';
import { http01ListenerAddresses, listenStreamOf } from './challenges/listener-addresses.ts';

export const LISTEN_STREAMS_FLAG = '--systemd-listen-streams';

export function printListenStreams(argv: string[]): never {
  const { values } = parseArgs({ args: argv, strict: true, options: { config: { type: 'string' } } });
  let lines: string[];
  try {
    lines = http01ListenerAddresses(loadConfig(values.config ?? defaultConfigPath())).map(listenStreamOf);
  } catch (e) {
    process.stderr.write(`certsep-acmed: ${(e as Error).message}\n`);
    process.exit(EXIT_CONFIG);
  }
  process.stdout.write(lines.map((line) => `${line}\n`).join(''));
  process.exit(0);
}
