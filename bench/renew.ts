// bench/renew: N single-name certificates end to end through certsep (every daemon under its own
// uid, one `certsepctl renew --all`: CSR, order, install, `nginx -t`, one batched reload) against a
// loop of certbot and a loop of lego issuing the same names, all against ONE Pebble and ONE nginx
// serving the http-01 webroot. Prints figures; asserts nothing. Run as root, after node build.mjs:
//   node --import tsx bench/renew.ts [--n 30] [--only certsep|certbot|lego] [--concurrency C] [--idle-exit S]
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { listenUnix } from '../supervisor/daemon-process.ts';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { deploydApi, type ProgressEvent } from '../deployd/api.ts';
import type { DaemonName } from '../proto/api.ts';
import { callOnce } from '../proto/client.ts';
import { startNginx, type Nginx } from '../test/harness/nginx.ts';
import { startPebble, type Pebble } from '../test/harness/pebble.ts';
import { descendantPids, isAlive, runCommand, trackDaemon, waitFor } from '../test/harness/proc.ts';
import { assertBuilt, DAEMON_IDS, prepareDaemonDirs, REPO, writeTestConfig } from '../test/harness/suite.ts';
import { makeTempDir, removeTempDir } from '../test/harness/tmp.ts';
import { setprivArgs } from '../test/harness/uids.ts';

const DAEMONS: DaemonName[] = ['privd', 'keyd', 'acmed', 'netd', 'deployd'];
const PIPELINE_STEPS = new Set(['csr', 'lease', 'order', 'install', 'check']);
const TOOLS = ['certsep', 'certbot', 'lego'] as const;
type Tool = (typeof TOOLS)[number];

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '30' },
    only: { type: 'string' },
    concurrency: { type: 'string' },
    'idle-exit': { type: 'string', default: '3' },
  },
});
const n = Number(values.n);
const only = values.only as Tool | undefined;
if (!(Number.isInteger(n) && n >= 1 && n <= 1000) || (only && !TOOLS.includes(only))) {
  process.stderr.write('usage: bench/renew.ts [--n 1..1000] [--only certsep|certbot|lego] [--concurrency C] [--idle-exit S]\n');
  process.exit(64);
}
const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);
const idleExit = Number(values['idle-exit']);
const hasGnuTime = existsSync('/usr/bin/time');

interface Figures {
  tool: Tool;
  wallS: number;
  perCertS: number[];
  peakRssKiB: number;
  failures: number;
}

const seconds = (ms: number) => ms / 1000;
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const mib = (kib: number) => (kib / 1024).toFixed(1);
const names = Array.from({ length: n }, (_, i) => `b${i + 1}.bench.example.com`);

/** Peak RSS (VmHWM, KiB) of each pid, sampled until it exits: the last sample is its peak. */
function watchPeakRss(pids: Map<string, number>): { peaks: Map<string, number>; stop(): void } {
  const peaks = new Map<string, number>();
  const sample = () => {
    for (const [name, pid] of pids) {
      try {
        const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        if (hwm) peaks.set(name, Math.max(peaks.get(name) ?? 0, Number(hwm[1])));
      } catch { /* exited: its last sample stands */ }
    }
  };
  const timer = setInterval(sample, 50);
  sample();
  return { peaks, stop: () => { sample(); clearInterval(timer); } };
}

/**
 * As certsep-supervisor does (and systemd's socket units): the socket is made here and passed as
 * fd 3, since unprivileged daemons cannot create files in the root-owned runDir. Unlike the
 * supervisor, nothing restarts a daemon that exits, so --idle-exit really ends it.
 */
function startDaemonWithSocket(name: DaemonName, dir: string, configPath: string): ChildProcess {
  const socket = join(dir, 'run', `${name}.sock`);
  const { fd, closeOurCopy } = listenUnix(socket, { uid: 0, gid: 0 });
  // The bench's daemons run under test uids without the socket groups install makes.
  chmodSync(socket, 0o666);
  const id = DAEMON_IDS[name];
  prepareDaemonDirs(dir, name, id);
  const node = [process.execPath, assertBuilt(name), '--config', configPath, '--idle-exit', String(idleExit)];
  const argv = id ? setprivArgs(id, node[0]!, node.slice(1)) : ['--pdeathsig', 'TERM', '--', ...node];
  const log = openSync(join(dir, `${name}.log`), 'a');
  // sh sets LISTEN_PID to its own pid, which setpriv and node keep across exec.
  const child = spawn('/bin/sh', ['-c', 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', 'sh', 'setpriv', ...argv], {
    stdio: ['ignore', log, log, fd],
    // info: the daemon's "ready" line tells the bench when it serves (the socket accepts before).
    env: { ...process.env, CERTSEP_LOG_LEVEL: 'info' },
  });
  closeSync(log);
  closeOurCopy();
  return trackDaemon(child);
}

async function benchCertsep(pebble: Pebble, nginx: Nginx, webroot: string): Promise<Figures & { daemonPeaks: Map<string, number>; ctlPeakKiB: number; reloads: number; idle: string; coldStartS: number; steps: string }> {
  const dir = makeTempDir('bench-certsep');
  try {
    const nginxArgs = ['-p', nginx.prefix, '-c', nginx.confPath, '-e', nginx.errorLogPath];
    const configPath = writeTestConfig(dir, {
      cas: { default: { ...pebble.caConfig(), email: 'ops@example.com' } },
      ...(concurrency ? { renewal: { concurrency }, acme: { concurrency } } : {}),
      services: { nginx: { check: [['nginx', '-t', '-q', ...nginxArgs]], reload: { command: ['nginx', '-s', 'reload', ...nginxArgs] } } },
      certificates: names.map((domain, i) => {
        const target = join(dir, 'targets', `b${i + 1}`);
        mkdirSync(target, { recursive: true, mode: 0o755 });
        return {
          name: `b${i + 1}`, domains: [domain], keyTypes: ['ec-p256'],
          challenge: { type: 'http-01-webroot', webroot },
          targets: [{ dir: target, mode: '0600', files: ['fullchain', 'privkey'], services: ['nginx'] }],
        };
      }),
    });
    const spawnedAt = performance.now();
    const children = new Map(DAEMONS.map((d) => [d, startDaemonWithSocket(d, dir, configPath)] as const));
    // Timed from a running suite, as under the supervisor; a cold start (socket activation) is reported apart.
    await waitFor(() => DAEMONS.every((d) => /"msg":"ready"/.test(readFileSync(join(dir, `${d}.log`), 'utf8'))), 30_000, 'every daemon ready');
    const coldStartS = seconds(performance.now() - spawnedAt);
    const rss = watchPeakRss(new Map([...children].map(([d, c]) => [d, c.pid!])));
    const reloadsBefore = nginx.reloadCount();
    const ctl = [process.execPath, join(REPO, 'dist', 'certsepctl.mjs'), '--config', configPath, 'renew', '--all'];
    const timeFile = join(dir, 'ctl.time');
    const startedAt = Date.now();
    const started = performance.now();
    const result = await runCommand(hasGnuTime ? '/usr/bin/time' : ctl[0]!, hasGnuTime ? ['-f', '%M', '-o', timeFile, ...ctl] : ctl.slice(1), { timeoutMs: 600_000 });
    const wallMs = performance.now() - started;
    if (result.code !== 0) process.stderr.write(`certsepctl renew exited ${result.code}:\n${result.stdout}\n${result.stderr}\n`);
    const runId = /^run ([0-9a-f]+):/m.exec(result.stdout)?.[1];
    const events = runId ? (await callOnce(deploydApi, join(dir, 'run', 'deployd.sock'), 'renew.progress', { runId, afterSeq: 0 })).events : [];
    // `nginx -s reload` returns once the signal is sent; give the master a moment to log it.
    await new Promise((r) => setTimeout(r, 1000));
    const reloads = nginx.reloadCount() - reloadsBefore;

    const idleStarted = performance.now();
    const pids = [...children.values()].flatMap((c) => [c.pid!, ...descendantPids(c.pid!)]);
    let idle: string;
    try {
      await waitFor(() => pids.every((p) => !isAlive(p)), (idleExit + 20) * 1000, 'every certsep process to exit');
      idle = `all ${pids.length} certsep processes gone ${seconds(performance.now() - idleStarted).toFixed(1)} s after the run (--idle-exit ${idleExit})`;
    } catch {
      idle = `STILL RUNNING after ${idleExit + 20} s: pids ${pids.filter(isAlive).join(' ')}`;
      for (const c of children.values()) c.kill('SIGTERM');
    }
    rss.stop();
    const perCert = perCertificate(events);
    const succeeded = new Set(events.filter((e) => e.step === 'check' && e.state === 'ok').map((e) => e.cert));
    return {
      tool: 'certsep',
      wallS: seconds(wallMs),
      perCertS: [...perCert.values()],
      peakRssKiB: [...rss.peaks.values()].reduce((a, b) => a + b, 0),
      failures: n - succeeded.size,
      daemonPeaks: rss.peaks,
      ctlPeakKiB: hasGnuTime && existsSync(timeFile) ? Number(readFileSync(timeFile, 'utf8').trim().split('\n').pop()) : NaN,
      reloads,
      idle,
      coldStartS,
      steps: stepBreakdown(events, startedAt, startedAt + wallMs),
    };
  } finally {
    removeTempDir(dir);
  }
}

/**
 * Per certificate: its pipeline, from the CSR's start to its last step before the run's batched
 * reload. The plan step is left out: it is noted for every certificate when the run begins, so it
 * would count the wait for a free pipeline (renewal.concurrency) as the certificate's own time.
 */
function perCertificate(events: ProgressEvent[]): Map<string, number> {
  const spans = new Map<string, { first: number; last: number }>();
  for (const e of events) {
    if (!PIPELINE_STEPS.has(e.step)) continue;
    const t = Date.parse(e.at);
    const span = spans.get(e.cert) ?? { first: t, last: t };
    spans.set(e.cert, { first: Math.min(span.first, t), last: Math.max(span.last, t) });
  }
  return new Map([...spans].map(([cert, s]) => [cert, seconds(s.last - s.first)]));
}

/** Where the time goes: per step, the mean over certificates and the share of summed step time. */
function stepBreakdown(events: ProgressEvent[], startedAt: number, endedAt: number): string {
  const starts = new Map<string, number>();
  const totals = new Map<string, number[]>();
  // The batched reload is noted for every certificate it covers: count it once.
  const reloadCert = events.find((e) => e.step === 'reload')?.cert;
  for (const e of events) {
    if (e.step === 'reload' && e.cert !== reloadCert) continue;
    const key = `${e.cert}/${e.keyType ?? ''}/${e.step}`;
    if (e.state === 'start') starts.set(key, Date.parse(e.at));
    else if (starts.has(key)) {
      const list = totals.get(e.step) ?? [];
      list.push(Date.parse(e.at) - starts.get(key)!);
      totals.set(e.step, list);
    }
  }
  const sum = [...totals.values()].flat().reduce((a, b) => a + b, 0);
  const firstAt = events.length > 0 ? Date.parse(events[0]!.at) : startedAt;
  const lastAt = events.length > 0 ? Date.parse(events.at(-1)!.at) : endedAt;
  const lines = [...totals].map(([step, ms]) => {
    const total = ms.reduce((a, b) => a + b, 0);
    return `  ${step.padEnd(8)} ×${String(ms.length).padStart(3)}  mean ${(total / ms.length).toFixed(0).padStart(5)} ms  p95 ${percentile(ms, 95).toFixed(0).padStart(5)} ms  ${((100 * total) / sum).toFixed(0).padStart(3)}% of step time`;
  });
  const timeline = `certsepctl start → first progress event ${seconds(firstAt - startedAt).toFixed(2)} s; first → last event ${seconds(lastAt - firstAt).toFixed(2)} s; last event → certsepctl exit ${seconds(endedAt - lastAt).toFixed(2)} s`;
  return [timeline, 'certsep steps (each certificate\'s step, start to end):', ...lines].join('\n');
}

async function benchLoop(tool: 'certbot' | 'lego', pebble: Pebble, webroot: string): Promise<Figures> {
  const dir = makeTempDir(`bench-${tool}`);
  try {
    const env = { ...process.env, REQUESTS_CA_BUNDLE: pebble.caBundlePath, LEGO_CA_CERTIFICATES: pebble.caBundlePath };
    const perCert: number[] = [];
    let peak = 0;
    let failures = 0;
    const started = performance.now();
    for (const name of names) {
      const argv = tool === 'certbot'
        ? ['certbot', 'certonly', '-n', '-q', '--server', pebble.directoryUrl, '--config-dir', join(dir, 'config'), '--work-dir', join(dir, 'work'),
          '--logs-dir', join(dir, 'logs'), '--register-unsafely-without-email', '--agree-tos', '--webroot', '-w', webroot,
          '--key-type', 'ecdsa', '--elliptic-curve', 'secp256r1', '-d', name]
        : ['lego', '--accept-tos', '--email', 'bench@example.com', '--server', pebble.directoryUrl, '--path', join(dir, 'lego'),
          '--key-type', 'ec256', '--http', '--http.webroot', webroot, '-d', name, 'run'];
      const timeFile = join(dir, 'time');
      const t = performance.now();
      const result = hasGnuTime
        ? await runCommand('/usr/bin/time', ['-f', '%M', '-o', timeFile, ...argv], { env, timeoutMs: 300_000 })
        : await runCommand(argv[0]!, argv.slice(1), { env, timeoutMs: 300_000 });
      perCert.push(seconds(performance.now() - t));
      if (result.code !== 0) {
        failures += 1;
        process.stderr.write(`${tool} for ${name} exited ${result.code}: ${result.stderr.slice(-400)}\n`);
      }
      if (hasGnuTime) peak = Math.max(peak, Number(readFileSync(timeFile, 'utf8').trim().split('\n').pop()));
    }
    return { tool, wallS: seconds(performance.now() - started), perCertS: perCert, peakRssKiB: hasGnuTime ? peak : NaN, failures };
  } finally {
    removeTempDir(dir);
  }
}

function printTable(rows: Figures[]): void {
  const certsep = rows.find((r) => r.tool === 'certsep');
  const header = ['tool', 'N', 'ok', 'wall s', 'p50 s', 'p95 s', 'peak RSS MiB', 'wall vs certsep'];
  const body = rows.map((r) => [
    r.tool, String(n), String(n - r.failures), r.wallS.toFixed(2), percentile(r.perCertS, 50).toFixed(2), percentile(r.perCertS, 95).toFixed(2),
    mib(r.peakRssKiB) + (r.tool === 'certsep' ? ' (sum)' : ' (max)'),
    certsep ? `${(r.wallS / certsep.wallS).toFixed(1)}×` : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  for (const line of [header, ...body]) console.log(line.map((c, i) => c.padEnd(widths[i]!)).join('  '));
}

const pebble = await startPebble();
const webroot = makeTempDir('bench-webroot');
let nginx: Nginx | undefined;
try {
  chmodSync(webroot, 0o755);
  mkdirSync(join(webroot, '.well-known', 'acme-challenge'), { recursive: true, mode: 0o755 });
  chownSync(join(webroot, '.well-known', 'acme-challenge'), DAEMON_IDS.acmed!.uid, DAEMON_IDS.acmed!.gid);
  nginx = await startNginx({ servers: [{ listen: pebble.httpPort, webroot }] });
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`bench/renew: N=${n} single-name ec-p256 certificates, http-01 webroot, one Pebble (NOSLEEP, no authz reuse), node ${process.version}, load ${load}`);
  const rows: Figures[] = [];
  const tools = only ? [only] : [...TOOLS];
  if (tools.includes('certsep')) {
    const c = await benchCertsep(pebble, nginx, webroot);
    rows.push(c);
    console.log(`certsep: renewal.concurrency ${concurrency ?? 'default (4)'}, acme.concurrency ${concurrency ?? 'default (8)'}; nginx reloads: ${c.reloads}; ${c.idle}`);
    console.log(`certsep cold start (5 daemons spawned → all ready, not in wall): ${c.coldStartS.toFixed(2)} s`);
    console.log(`certsep peak RSS: ${[...c.daemonPeaks].map(([d, kib]) => `${d} ${mib(kib)}`).join(', ')} MiB; sum ${mib(c.peakRssKiB)} MiB; certsepctl ${mib(c.ctlPeakKiB)} MiB`);
    console.log(c.steps);
  }
  for (const tool of tools) if (tool !== 'certsep') rows.push(await benchLoop(tool, pebble, webroot));
  console.log('');
  printTable(rows);
  const certsep = rows.find((r) => r.tool === 'certsep');
  for (const [tool, target] of [['certbot', 10], ['lego', 20]] as const) {
    const other = rows.find((r) => r.tool === tool);
    if (!certsep || !other) continue;
    const ratio = other.wallS / certsep.wallS;
    console.log(`target: certsep >= ${target}x faster than the ${tool} loop: ${ratio.toFixed(1)}x — ${ratio >= target ? 'MET' : 'NOT MET'}`);
  }
} finally {
  await nginx?.stop();
  await pebble.stop();
  removeTempDir(webroot);
}
