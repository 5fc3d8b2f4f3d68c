// Runs inside a certsep unit as a test-only ExecStartPost=, so it gets that unit's user,
// capabilities, seccomp filter and mount and network namespaces, and reports what the sandbox
// lets it do as one JSON line in the unit's journal:
//   node sandbox-probe.mjs DAEMON [--write PATH]... [--run CMD,ARG...]...
// It always exits 0: a probe must never be what makes the unit fail.
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';

const [daemon, ...rest] = process.argv.slice(2);
const writes = {};
const runs = {};
for (let i = 0; i < rest.length; i += 2) {
  const value = rest[i + 1];
  if (rest[i] === '--write') {
    try {
      writeFileSync(value, 'probe\n');
      rmSync(value);
      writes[value] = 'ok';
    } catch (e) {
      writes[value] = e.code;
    }
  } else if (rest[i] === '--run') {
    const [cmd, ...args] = value.split(',');
    try {
      execFileSync(cmd, args, { stdio: 'pipe', timeout: 30_000 });
      runs[value] = 0;
    } catch (e) {
      runs[value] = `${e.status ?? e.code}: ${String(e.stderr ?? '').trim().replaceAll('\n', ' | ')}`;
    }
  }
}

const status = readFileSync('/proc/self/status', 'utf8');
const field = (name) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1];

const inet = await new Promise((resolve) => {
  try {
    const socket = createSocket('udp4');
    socket.on('error', (e) => resolve(e.code));
    socket.bind(0, '127.0.0.1', () => { socket.close(); resolve('ok'); });
  } catch (e) {
    resolve(e.code);
  }
});

console.log(`certsep-probe ${JSON.stringify({
  daemon,
  uid: process.getuid(),
  capEff: field('CapEff'),
  noNewPrivs: field('NoNewPrivs'),
  seccomp: field('Seccomp'),
  inet,
  writes,
  runs,
})}`);
