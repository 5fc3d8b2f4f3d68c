// What a compromised daemon can do to its own audit file, run under that daemon's uid by the
// anchor tests (plain JS: it also runs inside the booted container, which has node but no tsx):
//   node test/audit/rewrite-own-log.mjs FILE drop SEQ | cut N | forge DAEMON
//   drop SEQ     remove that record and re-hash every line after it: the chain is valid again
//   cut N        remove the last N records: what is left is a valid chain
//   forge NAME   append a record that claims to come from daemon NAME, chained correctly
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

const [file, action, arg] = process.argv.slice(2);
let records = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
if (action === 'drop') records = records.filter((r) => r.seq !== Number(arg));
if (action === 'cut') records = records.slice(0, records.length - Number(arg));
if (action === 'forge') {
  const last = records.at(-1);
  records.push({ ...last, seq: last.seq + 1, daemon: arg, method: 'deploy.install', outcome: 'ok', peer: { uid: 0, gid: 0, pid: 1 } });
}
let prev = '0'.repeat(64);
const lines = records.map((r, i) => {
  const line = JSON.stringify({ ...r, seq: i + 1, prev });
  prev = createHash('sha256').update(line).digest('hex');
  return line;
});
writeFileSync(file, `${lines.join('\n')}\n`);
