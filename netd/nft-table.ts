// Reads and replaces netd's own nftables table through `nft -j` and `nft -f -`. Nothing here
// names another table: the ruleset text comes from nft-ruleset.ts, the one read is of our set.
import { RpcError } from '../proto/errors.ts';
import { NetdError } from './api.ts';
import {
  certsepRuleset, RAISED_LOCALNET_SET, removalRuleset, SET, TABLE, type NftExposure, type OpenElement,
} from './nft-ruleset.ts';
import { NFT, runTool } from './tools.ts';

export interface ExposedElement {
  interface: string;
  externalPort: number;
  /** Seconds until the kernel removes it, as nft reports (whole seconds). */
  expiresSeconds: number | null;
}

export async function replaceCertsepTable(
  exposures: readonly NftExposure[],
  open: readonly OpenElement[],
  raisedLocalnet: readonly string[],
): Promise<void> {
  const ruleset = exposures.length > 0 ? certsepRuleset(exposures, open, raisedLocalnet) : removalRuleset();
  const r = await runTool(NFT, ['-f', '-'], { input: ruleset });
  if (r.code !== 0) throw new RpcError(NetdError.NFT, `nft refused certsep's ruleset for table ${TABLE}: ${r.stderr.trim().split('\n')[0] ?? `exit ${r.code}`}`);
}

/** The elements of our set, or null when our table (or set) does not exist. */
export async function readExposedElements(): Promise<ExposedElement[] | null> {
  const elements = await readSetElements(SET);
  return elements === null ? null : elements.map(parseElement);
}

/** The interfaces our table records as having had route_localnet raised by netd ([] without a table). */
export async function readRaisedLocalnet(): Promise<string[]> {
  const elements = (await readSetElements(RAISED_LOCALNET_SET)) ?? [];
  return elements.map((raw) => {
    if (typeof raw !== 'string') {
      const what = JSON.stringify(raw);
      throw new RpcError(NetdError.NFT, `unexpected element in ${TABLE} ${RAISED_LOCALNET_SET}: ${what}`);
    }
    return raw;
  });
}

async function readSetElements(set: string): Promise<unknown[] | null> {
  const r = await runTool(NFT, ['-j', 'list', 'set', ...TABLE.split(' '), set]);
  if (r.code !== 0) {
    if (/No such file or directory/.test(r.stderr)) return null;
    const why = r.stderr.trim().split('\n')[0] ?? `exit ${r.code}`;
    throw new RpcError(NetdError.NFT, `nft cannot list set ${TABLE} ${set}: ${why}`);
  }
  const doc = JSON.parse(r.stdout) as { nftables?: Array<{ set?: { elem?: unknown[] } }> };
  return doc.nftables?.find((o) => o.set)?.set?.elem ?? [];
}

// nft -j writes an element with a timeout as {"elem": {"val": {"concat": [...]}, "expires": n}}
// and one without as {"concat": [...]}.
function parseElement(raw: unknown): ExposedElement {
  const wrapped = (raw as { elem?: { val?: unknown; expires?: number } }).elem;
  const val = (wrapped ? wrapped.val : raw) as { concat?: unknown[] };
  const [ifname, port] = val.concat ?? [];
  if (typeof ifname !== 'string' || typeof port !== 'number') throw new RpcError(NetdError.NFT, `unexpected element in ${TABLE} ${SET}: ${JSON.stringify(raw)}`);
  return { interface: ifname, externalPort: port, expiresSeconds: typeof wrapped?.expires === 'number' ? wrapped.expires : null };
}
