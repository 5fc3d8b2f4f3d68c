// The shape of certsep.yaml. Every object is strict: a misspelled key is an error, never a
// silently ignored setting. Defaults live here so every daemon sees the same effective config.
import { z } from 'zod';
import { checkCrossReferences } from './cross-references.ts';
import {
  AbsolutePath, Argv, DnsName, FileMode, IpAddress, LoginName, NetworkInterface, Port, PrintableText,
  ResolverAddress, SafeName, Seconds, SshPublicKey, SystemdUnit, UserRef,
} from './fields.ts';

export { isSafeName } from './fields.ts';

const Users = z.strictObject({
  keyd: UserRef.default('certsep-key'),
  acmed: UserRef.default('certsep-acme'),
  netd: UserRef.default('certsep-net'),
  deployd: UserRef.default('certsep-deploy'),
  /** Only on a host with the remote role: the user whose ssh forced command is certsepctl remote-serve. */
  remote: UserRef.optional(),
  admins: z.array(UserRef).max(64).default([]),
});

const Paths = z.strictObject({
  runDir: AbsolutePath.default('/run/certsep'),
  stateDir: AbsolutePath.default('/var/lib/certsep'),
  auditDir: AbsolutePath.default('/var/log/certsep'),
});

const Rpc = z.strictObject({
  maxFrameBytes: z.number().int().min(4096).max(64 * 1024 * 1024).default(262144),
  requestTimeoutSeconds: Seconds(86400).default(300),
  idleExitSeconds: z.number().int().min(0).max(86400).default(0),
});

const CaDirectory = z.union([
  z.literal('letsencrypt'),
  z.literal('letsencrypt-staging'),
  z.url({ protocol: /^https$/, error: (iss) => `${JSON.stringify(iss.input)} must be "letsencrypt", "letsencrypt-staging" or an https:// directory URL` }),
]);

const Ca = z.strictObject({
  directory: CaDirectory,
  email: z.email({ error: (iss) => `${JSON.stringify(iss.input)} is not an email address` }).optional(),
  trustBundle: AbsolutePath.optional(),
  eab: z.strictObject({ kid: PrintableText(512), hmacKeyFile: AbsolutePath }).optional(),
  profile: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'an ACME profile name is letters, digits, ".", "_" and "-"' }).optional(),
  preferredChain: PrintableText(256).optional(),
  /** Where dry runs (`--staging`) order, with their own account; letsencrypt's is letsencrypt-staging. */
  staging: CaDirectory.optional(),
  /**
   * The roots (PEM, root-owned) privd verifies this CA's chains to, read at each install; without
   * it, the system trust store. A private CA (Pebble, step-ca) needs it.
   */
  roots: AbsolutePath.optional(),
  /** The longest leaf lifetime privd installs from this CA; default the CA/Browser Forum maximum in force. */
  maxLifetimeDays: z.number().int().min(1).max(3650).optional(),
});

const Acme = z.strictObject({
  /** Orders acmed runs at once, across all certificates and CAs. */
  concurrency: z.number().int().min(1).max(64).default(8),
});

// deployd's scheduling: how many certificates renew at once, where the Prometheus textfile goes,
// and hooks that apply to every certificate (a certificate's own hooks replace them).
const Renewal = z.strictObject({
  concurrency: z.number().int().min(1).max(64).default(4),
  metricsFile: AbsolutePath.optional(),
  hooks: z.strictObject({ onRenewed: Argv.optional(), onFailure: Argv.optional() }).optional(),
});

const ServiceReload = z.union([
  z.strictObject({ systemd: SystemdUnit, action: z.enum(['reload', 'restart', 'try-reload-or-restart']).default('reload') }),
  z.strictObject({ command: Argv }),
]);

const Service = z.strictObject({
  check: z.array(Argv).max(16).default([]),
  reload: ServiceReload,
  timeoutSeconds: Seconds(3600).default(60),
});

const exposureCommon = {
  externalPort: Port.default(80),
  internalPort: Port.default(8402),
  interface: NetworkInterface,
  maxTtlSeconds: Seconds(3600).default(600),
};

const Exposure = z.discriminatedUnion('method', [
  z.strictObject({ method: z.literal('nft'), internalAddress: IpAddress.default('127.0.0.1'), ...exposureCommon }),
  z.strictObject({ method: z.literal('upnp'), internalAddress: IpAddress.optional(), ...exposureCommon }),
]);

const Challenge = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('http-01-webroot'), webroot: AbsolutePath }),
  z.strictObject({ type: z.literal('http-01-listener'), address: IpAddress.default('127.0.0.1'), port: Port.default(8402) }),
  z.strictObject({
    type: z.literal('dns-01-hook'),
    command: Argv,
    resolver: ResolverAddress.optional(),
    propagationTimeoutSeconds: Seconds(3600).default(120),
  }),
  z.strictObject({
    type: z.literal('dns-01-rfc2136'),
    server: z.union([IpAddress, DnsName]),
    port: Port.default(53),
    zone: DnsName,
    tsigKeyFile: AbsolutePath,
  }),
]);

const KeyType = z.enum(['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096']);

// Two key types exist for dual RSA+EC deployments; two of the same family would overwrite each
// other's files in a target, so the pair must be one of each.
const KeyTypes = z
  .array(KeyType)
  .min(1)
  .max(2)
  .refine((types) => types.length === 1 || (types[0]?.slice(0, 2) !== types[1]?.slice(0, 2)), {
    error: 'two key types must be one RSA and one EC type',
  })
  .default(['ec-p256']);

// Hosts with certsep's remote role (install --remote-only), reached by deployd over OpenSSH. Only
// the host keys listed here are accepted: deployd writes them as its only known_hosts.
const Host = z.strictObject({
  address: z.union([IpAddress, DnsName]),
  port: Port.default(22),
  user: LoginName.default('certsep-remote'),
  hostKeys: z.array(SshPublicKey).min(1).max(8),
  /** deployd's private ssh key; it must be readable by deployd's user alone (ssh refuses it otherwise). */
  identityFile: AbsolutePath.refine((p) => /^[A-Za-z0-9._/-]+$/.test(p), {
    // ssh splits an -o value at blanks and expands %-tokens in IdentityFile.
    error: 'identityFile may hold only letters, digits, ".", "_", "-" and "/" (ssh would split at blanks and expand "%")',
  }).default('/var/lib/certsep/deployd/ssh/id_ed25519'),
  connectTimeoutSeconds: Seconds(300).default(10),
});

// The delivery queue (certdeploy-style): a chain issued for a host that could not take it is kept
// and offered again, retryIntervalSeconds doubling up to maxRetryIntervalSeconds, retries times.
const Delivery = z.strictObject({
  retries: z.number().int().min(0).max(1000).default(12),
  retryIntervalSeconds: Seconds(86400).default(300),
  maxRetryIntervalSeconds: Seconds(7 * 86400).default(6 * 3600),
  /** Hosts contacted at once within a run. */
  concurrency: z.number().int().min(1).max(64).default(4),
});

const CertificateFile = z.enum(['cert', 'chain', 'fullchain', 'privkey', 'combined']);

const Target = z.strictObject({
  dir: AbsolutePath,
  owner: UserRef.default('root'),
  group: UserRef.default('root'),
  mode: FileMode.default('0640'),
  files: z
    .array(CertificateFile)
    .min(1)
    .refine((files) => new Set(files).size === files.length, { error: 'files lists a file twice' })
    .default(['cert', 'chain', 'fullchain', 'privkey']),
  services: z.array(SafeName).max(32).default([]),
});

const Certificate = z.strictObject({
  name: SafeName,
  domains: z.array(DnsName).min(1).max(100),
  keyTypes: KeyTypes,
  keyPolicy: z.enum(['rotate', 'reuse']).default('rotate'),
  ca: SafeName.default('default'),
  /** Absent on a host with the remote role: its certificates are ordered by the central host. */
  challenge: Challenge.optional(),
  exposure: SafeName.optional(),
  renewBeforeDays: z.number().positive().max(365).optional(),
  renewAfterDays: z.number().positive().max(365).optional(),
  hooks: z.strictObject({ onRenewed: Argv.optional(), onFailure: Argv.optional() }).optional(),
  targets: z.array(Target).max(32).default([]),
  /** Remote hosts that each get this certificate under their own key (one order per host). */
  hosts: z.array(SafeName).max(64).refine((hosts) => new Set(hosts).size === hosts.length, { error: 'hosts lists a host twice' }).default([]),
});

const ConfigShape = z.strictObject({
  users: Users.prefault({}),
  paths: Paths.prefault({}),
  rpc: Rpc.prefault({}),
  acme: Acme.prefault({}),
  renewal: Renewal.prefault({}),
  cas: z.record(SafeName, Ca).prefault({ default: { directory: 'letsencrypt' } }),
  services: z.record(SafeName, Service).default({}),
  exposures: z.record(SafeName, Exposure).default({}),
  hosts: z.record(SafeName, Host).default({}),
  delivery: Delivery.prefault({}),
  certificates: z.array(Certificate).max(1000).default([]),
});

/** The config before cross-field checks; only cross-references.ts needs this type. */
export type ConfigShape = z.output<typeof ConfigShape>;

export const ConfigSchema = ConfigShape.superRefine(checkCrossReferences);

export type Config = z.infer<typeof ConfigSchema>;
export type CertificateConfig = Config['certificates'][number];
export type TargetConfig = CertificateConfig['targets'][number];
export type ChallengeConfig = NonNullable<CertificateConfig['challenge']>;
export type CaConfig = Config['cas'][string];
export type ServiceConfig = Config['services'][string];
export type ExposureConfig = Config['exposures'][string];
export type HostConfig = Config['hosts'][string];
export type DeliveryConfig = Config['delivery'];
export type KeyType = z.infer<typeof KeyType>;
export type CertificateFile = z.infer<typeof CertificateFile>;

export function certificateByName(config: Config, name: string): CertificateConfig | undefined {
  return config.certificates.find((certificate) => certificate.name === name);
}
