// UPnP exposures: one port mapping on the LAN's Internet Gateway Device per open exposure, with
// a lease duration so that the router itself removes it at the deadline. netd only ever changes
// mappings that are its own: TCP, to this host's LAN address, described "certsep:<exposure>".
import { RpcError } from '../proto/errors.ts';
import { NetdError } from './api.ts';
import { IP, runTool } from './tools.ts';
import { addMapping, deleteMapping, discoverIgd, listMappings, UpnpRefusal, type Igd, type Mapping } from './upnpc.ts';

export interface Gateway {
  igd: Igd;
  /** This host's address towards the IGD: the only internal client netd maps to. */
  lanAddress: string;
}

export interface UpnpExposure {
  name: string;
  interface: string;
  externalPort: number;
  internalPort: number;
  /** The exposure's internalAddress, or by default this host's LAN address. */
  internalClient: string;
}

export interface OpenedMapping {
  externalAddress: string | null;
  routerLeaseSeconds: number;
}

export function mappingDescription(exposureName: string): string {
  return `certsep:${exposureName}`;
}

/** Ours: TCP, to an internal client of ours, with a certsep description. */
export function isCertsepMapping(m: Mapping, clients: ReadonlySet<string>): boolean {
  return m.protocol === 'TCP' && clients.has(m.internalClient) && m.description.startsWith('certsep:');
}

/** Remembers each interface's IGD; discovery (SSDP) costs about 2 s. */
export class Gateways {
  private readonly known = new Map<string, Gateway>();

  async on(iface: string): Promise<Gateway> {
    const cached = this.known.get(iface);
    if (cached) return cached;
    const igd = await discoverIgd(iface);
    const gateway = { igd, lanAddress: await lanAddressTowards(new URL(igd.descUrl).hostname, iface) };
    this.known.set(iface, gateway);
    return gateway;
  }

  /** Runs op against the interface's IGD; if a remembered IGD fails, discovers again once. */
  async use<T>(iface: string, op: (gateway: Gateway) => Promise<T>): Promise<T> {
    const wasCached = this.known.has(iface);
    try {
      return await op(await this.on(iface));
    } catch (e) {
      if (!wasCached || e instanceof UpnpRefusal || (e instanceof RpcError && e.code === NetdError.CONFLICT)) throw e;
      this.known.delete(iface);
      return op(await this.on(iface));
    }
  }
}

/** Maps externalPort → internalClient:internalPort for leaseSeconds, unless someone else holds the port. */
export async function openUpnpMapping(gateway: Gateway, x: UpnpExposure, leaseSeconds: number): Promise<OpenedMapping> {
  const holder = (await listMappings(gateway.igd)).find((m) => m.protocol === 'TCP' && m.externalPort === x.externalPort);
  if (holder && !(holder.internalClient === x.internalClient && holder.description === mappingDescription(x.name))) {
    throw new RpcError(
      NetdError.CONFLICT,
      `external port ${x.externalPort}/tcp is already mapped by the router to ${holder.internalClient}:${holder.internalPort} ("${holder.description}"); netd will not take it over`,
    );
  }
  let added;
  try {
    added = await addMapping(gateway.igd, {
      internalClient: x.internalClient,
      internalPort: x.internalPort,
      externalPort: x.externalPort,
      description: mappingDescription(x.name),
      leaseSeconds,
    });
  } catch (e) {
    throw refusalToRpcError(e, x);
  }
  if (added.leaseSeconds === 0) {
    // A permanent mapping would outlive netd; take it back and refuse the lease.
    await deleteMapping(gateway.igd, x.externalPort);
    throw new RpcError(NetdError.UPNP, `the router made port ${x.externalPort} a permanent mapping instead of a ${leaseSeconds} s lease; netd will not open a port that does not close by itself`);
  }
  return { externalAddress: added.externalAddress ?? gateway.igd.externalAddress, routerLeaseSeconds: added.leaseSeconds };
}

/** Deletes the exposure's mapping if it is still ours; true if one was deleted. */
export async function closeUpnpMapping(gateway: Gateway, x: UpnpExposure): Promise<boolean> {
  const mine = (await listMappings(gateway.igd)).find((m) => m.externalPort === x.externalPort && isCertsepMapping(m, new Set([x.internalClient])));
  if (!mine) return false;
  await deleteMapping(gateway.igd, x.externalPort);
  return true;
}

function refusalToRpcError(e: unknown, x: UpnpExposure): unknown {
  if (!(e instanceof UpnpRefusal)) return e;
  if (e.upnpCode === 718) return new RpcError(NetdError.CONFLICT, `the router refused port ${x.externalPort}/tcp: it is mapped to another internal client (718 ConflictInMappingEntry)`);
  if (e.upnpCode === 725) return new RpcError(NetdError.UPNP, `the router only supports permanent mappings (725 OnlyPermanentLeasesSupported); netd will not open a port that does not close by itself`);
  return new RpcError(NetdError.UPNP, `the router refused to map port ${x.externalPort}/tcp: ${e.message}`);
}

// As the seed scripts did: the source address the kernel picks for the gateway is our LAN
// address. It must be reached through the configured interface, or the mapping would point at
// an address on another network.
async function lanAddressTowards(gatewayAddress: string, iface: string): Promise<string> {
  const r = await runTool(IP, ['-j', 'route', 'get', gatewayAddress]);
  if (r.code !== 0) throw new RpcError(NetdError.UPNP, `no route to the IGD at ${gatewayAddress}: ${r.stderr.trim()}`);
  const route = (JSON.parse(r.stdout) as Array<{ dev?: string; prefsrc?: string }>)[0];
  if (!route?.prefsrc) throw new RpcError(NetdError.UPNP, `the route to the IGD at ${gatewayAddress} has no source address`);
  if (route.dev !== iface) throw new RpcError(NetdError.UPNP, `the IGD at ${gatewayAddress} is reached through ${route.dev ?? '?'}, not the configured interface ${iface}`);
  return route.prefsrc;
}
