// Debian's upnpc (miniupnpc 2.2.4) as netd's IGD client: SSDP discovery, AddPortMapping with a
// lease duration, GetGenericPortMappingEntry (listing), DeletePortMapping. upnpc exits 0 even
// when the router refused, so every answer is read from its output; the lines parsed here are
// the ones miniupnpc's upnpc.c prints.
import { RpcError } from '../proto/errors.ts';
import { NetdError } from './api.ts';
import { runTool, UPNPC } from './tools.ts';

export interface Igd {
  /** The root description URL (upnpc -u skips the 2-second discovery with it). */
  descUrl: string;
  externalAddress: string | null;
}

export interface Mapping {
  protocol: 'TCP' | 'UDP';
  externalPort: number;
  internalClient: string;
  internalPort: number;
  description: string;
  leaseSeconds: number;
}

export interface AddedMapping {
  externalAddress: string | null;
  /** The duration the router reports for the new mapping (0 = permanent). */
  leaseSeconds: number;
}

/** SSDP discovery on one interface; the IGD upnpc picked as valid and connected. */
export async function discoverIgd(iface: string): Promise<Igd> {
  const out = await upnpc(['-m', iface, '-s']);
  const control = /^Found valid IGD : (\S+)/m.exec(out)?.[1];
  if (!control) throw new RpcError(NetdError.UPNP, `no UPnP Internet Gateway Device answered on ${iface}`);
  const origin = new URL(control).origin;
  const descUrl = [...out.matchAll(/^ desc: (\S+)/gm)].map((m) => m[1]!).find((u) => new URL(u).origin === origin);
  if (!descUrl) throw new RpcError(NetdError.UPNP, `the IGD on ${iface} at ${origin} sent no root description URL`);
  return { descUrl, externalAddress: externalAddressIn(out) };
}

export async function listMappings(igd: Igd): Promise<Mapping[]> {
  const out = await upnpc(['-u', igd.descUrl, '-l']);
  const mappings: Mapping[] = [];
  for (const m of out.matchAll(/^ *\d+ (TCP|UDP) +(\d+)->([0-9.]+):(\d+) +'(.*)' '.*' (\d+)$/gm)) {
    mappings.push({
      protocol: m[1] as 'TCP' | 'UDP',
      externalPort: Number(m[2]),
      internalClient: m[3]!,
      internalPort: Number(m[4]),
      description: m[5]!,
      leaseSeconds: Number(m[6]),
    });
  }
  return mappings;
}

export async function addMapping(igd: Igd, m: { internalClient: string; internalPort: number; externalPort: number; description: string; leaseSeconds: number }): Promise<AddedMapping> {
  const out = await upnpc(['-u', igd.descUrl, '-e', m.description, '-a', m.internalClient, String(m.internalPort), String(m.externalPort), 'TCP', String(m.leaseSeconds)]);
  const refused = /^AddPortMapping\(.*\) failed with code (\d+) \((\w*)\)/m.exec(out);
  if (refused) throw new UpnpRefusal(Number(refused[1]), refused[2] ?? '');
  const done = /^external (\S+):(\d+) TCP is redirected to internal ([0-9.]+):(\d+) \(duration=(\d+)\)/m.exec(out);
  if (!done) throw new RpcError(NetdError.UPNP, `the IGD at ${igd.descUrl} did not confirm the mapping of port ${m.externalPort}`);
  return { externalAddress: externalAddressIn(out) ?? done[1] ?? null, leaseSeconds: Number(done[5]) };
}

export async function deleteMapping(igd: Igd, externalPort: number): Promise<void> {
  const out = await upnpc(['-u', igd.descUrl, '-d', String(externalPort), 'TCP']);
  const status = /^UPNP_DeletePortMapping\(\) returned : (-?\d+)/m.exec(out)?.[1];
  // 714 NoSuchEntryInArray: already gone (expired), which is what we wanted.
  if (status !== '0' && status !== '714') throw new RpcError(NetdError.UPNP, `the IGD at ${igd.descUrl} did not delete the mapping of port ${externalPort} (${status ?? 'no answer'})`);
}

/** An UPnP error code from the router, e.g. 718 ConflictInMappingEntry, 725 OnlyPermanentLeasesSupported. */
export class UpnpRefusal extends Error {
  constructor(readonly upnpCode: number, readonly upnpName: string) {
    super(`UPnP error ${upnpCode} ${upnpName}`);
  }
}

function externalAddressIn(out: string): string | null {
  return /^ExternalIPAddress = ([0-9.]+)/m.exec(out)?.[1] ?? null;
}

async function upnpc(args: string[]): Promise<string> {
  const r = await runTool(UPNPC, args, { timeoutMs: 30_000 });
  if (r.code !== 0) throw new RpcError(NetdError.UPNP, `upnpc ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim().split('\n').pop() ?? `exit ${r.code}`}`);
  return r.stdout;
}
