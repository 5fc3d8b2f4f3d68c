// The whole of what netd puts into nftables, generated as text for `nft -f -`: one table of its
// own, `inet certsep`, replaced in a single transaction each time (`table …; delete table …;
// table … {…}` creates it if missing, then swaps it atomically), so no other table is ever named.
//
// Each configured nft exposure gets a fixed DNAT rule, but every rule only matches when
// (input interface . external port) is an element of the set @exposed. A lease is one element
// with a kernel timeout: at the deadline the kernel deletes it and the port closes, whether netd
// is running or not. Elements can only open exposures from the config, never arbitrary ports.
import { isIP } from 'node:net';

export const TABLE = 'inet certsep';
export const SET = 'exposed';
export const RAISED_LOCALNET_SET = 'localnet_raised';

export interface NftExposure {
  name: string;
  interface: string;
  externalPort: number;
  internalAddress: string;
  internalPort: number;
}

export interface OpenElement {
  interface: string;
  externalPort: number;
  /** Remaining lifetime; the kernel removes the element when it runs out. */
  timeoutMs: number;
}

/**
 * The complete ruleset for netd's table: every exposure's rules, the open elements, and the
 * interfaces whose route_localnet netd raised (`raisedLocalnet`).
 */
export function certsepRuleset(
  exposures: readonly NftExposure[],
  open: readonly OpenElement[],
  raisedLocalnet: readonly string[],
): string {
  const elements = open
    .filter((e) => e.timeoutMs >= 1)
    .map((e) => `${quoted(e.interface)} . ${e.externalPort} timeout ${Math.ceil(e.timeoutMs)}ms`);
  const interfaces = [...new Set(exposures.map((x) => x.interface))];
  return [
    `table ${TABLE}`,
    `delete table ${TABLE}`,
    `table ${TABLE} {`,
    `  set ${SET} {`,
    '    type ifname . inet_service',
    '    flags timeout',
    ...(elements.length > 0 ? [`    elements = { ${elements.join(', ')} }`] : []),
    '  }',
    // A second record of what netd must put back, kept in the kernel beside the sysctl itself:
    // both vanish together at reboot, and a netd that lost leases.json still finds it here.
    `  set ${RAISED_LOCALNET_SET} {`,
    '    type ifname',
    ...(raisedLocalnet.length > 0 ? [`    elements = { ${raisedLocalnet.map(quoted).join(', ')} }`] : []),
    '  }',
    // dstnat - 10: the first DNAT decided for a connection wins, so ours runs before the usual
    // nat chains (priority dstnat) that other software installs.
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat - 10; policy accept;',
    ...exposures.map(dnatRule),
    '  }',
    // The accept for the DNAT'd packets, on input (a local listener) and forward (another host),
    // counted per exposure. nftables semantics: an accept ends only this chain; a drop in another
    // table's chain still drops. netd does not edit other tables — a host firewall with a drop
    // policy must allow `ct status dnat` itself.
    // route_localnet=1, which DNAT to 127.0.0.1 needs, also lets a neighbour send packets for
    // any loopback address in through the interface (CVE-2020-8558): after the leases' accepts,
    // everything else for 127.0.0.0/8 from an exposure's interface is dropped.
    '  chain input {',
    '    type filter hook input priority filter - 10; policy accept;',
    ...exposures.map(acceptRule),
    ...interfaces.map(loopbackDropRule),
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter - 10; policy accept;',
    ...exposures.map(acceptRule),
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Removes netd's table if it exists (no nft exposure configured any more). */
export function removalRuleset(): string {
  return `table ${TABLE}\ndelete table ${TABLE}\n`;
}

function dnatRule(x: NftExposure): string {
  const family = familyOf(x.internalAddress);
  const target = family === 'ip6' ? `[${x.internalAddress}]:${x.internalPort}` : `${x.internalAddress}:${x.internalPort}`;
  return `    iifname ${quoted(x.interface)} tcp dport ${x.externalPort} iifname . tcp dport @${SET} counter dnat ${family} to ${target} comment ${quoted(`exposure ${x.name}`)}`;
}

function acceptRule(x: NftExposure): string {
  const family = familyOf(x.internalAddress);
  return (
    `    iifname ${quoted(x.interface)} ${family} daddr ${x.internalAddress} tcp dport ${x.internalPort} ct status dnat ` +
    `ct original proto-dst ${x.externalPort} iifname . ct original proto-dst @${SET} counter accept comment ${quoted(`exposure ${x.name}`)}`
  );
}

function loopbackDropRule(iface: string): string {
  const comment = quoted(`loopback via ${iface} outside a lease`);
  return `    iifname ${quoted(iface)} ip daddr 127.0.0.0/8 counter drop comment ${comment}`;
}

function familyOf(address: string): 'ip' | 'ip6' {
  return isIP(address) === 6 ? 'ip6' : 'ip';
}

// Interface and exposure names are restricted by the config schema to characters that cannot
// end a quoted nft string; the check here keeps that true if the schema ever loosens.
function quoted(s: string): string {
  if (!/^[A-Za-z0-9_.:@ -]+$/.test(s)) throw new Error(`refusing to put ${JSON.stringify(s)} into an nft ruleset`);
  return `"${s}"`;
}
