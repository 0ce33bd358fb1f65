import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '../errors.js';
import { defaultConfig, parseConfig, type Config, type HostFacts } from './config.js';

const M = 1024 * 1024;
const G = 1024 * M;
const HOST: HostFacts = { cpus: 8, memBytes: 16 * G };
const SRC = '/home/u/.config/banger/config.toml';

test('empty text gives all defaults', () => {
  const want: Config = {
    logLevel: 'info',
    vmm: 'auto',
    accel: 'auto',
    firecrackerBin: 'firecracker',
    qemuBin: 'qemu-system-x86_64',
    sshKeyPath: undefined,
    sshWaitTimeoutMs: 90_000,
    insecureRegistries: [],
    catalog: undefined,
    defaultImageName: 'debian-bookworm',
    defaultKernelName: 'debian-bookworm-cloud',
    mirror: undefined,
    networkMode: 'user',
    bridgeName: 'br-fc',
    bridgeIp: '172.16.0.1',
    cidr: 24,
    dnsListen: '127.0.0.1:42069',
    autoStopStaleAfterMs: 0,
    maxUnpackedBytes: 32 * G,
    warmStart: true,
    warmStartBackground: true,
    vmDefaults: { vcpu: 2, memoryMib: 2048, diskSizeBytes: 8 * G, systemOverlaySizeBytes: 8 * G },
    provenance: { vcpu: 'auto', memoryMib: 'auto', diskSizeBytes: 'builtin', systemOverlaySizeBytes: 'builtin' },
    fileSync: [],
  };
  assert.deepEqual(parseConfig('', SRC, HOST), want);
  assert.deepEqual(parseConfig('# just a comment\n\n', SRC, HOST), want);
  assert.deepEqual(defaultConfig(HOST), want);
});

const autoCases: { host: HostFacts; vcpu: number; memoryMib: number }[] = [
  { host: { cpus: 1, memBytes: 1 * G }, vcpu: 1, memoryMib: 512 },
  { host: { cpus: 4, memBytes: 4 * G }, vcpu: 1, memoryMib: 512 },
  { host: { cpus: 7, memBytes: 6 * G }, vcpu: 1, memoryMib: 768 },
  { host: { cpus: 8, memBytes: 16 * G }, vcpu: 2, memoryMib: 2048 },
  { host: { cpus: 12, memBytes: 15.5 * G }, vcpu: 3, memoryMib: 1920 },
  { host: { cpus: 16, memBytes: 10 * G + 123_456_789 }, vcpu: 4, memoryMib: 1280 },
  { host: { cpus: 64, memBytes: 256 * G }, vcpu: 4, memoryMib: 8192 },
  { host: { cpus: 0, memBytes: 0 }, vcpu: 1, memoryMib: 512 },
];
for (const c of autoCases) {
  test(`auto defaults for ${c.host.cpus} cpus / ${c.host.memBytes} bytes`, () => {
    const cfg = defaultConfig(c.host);
    assert.equal(cfg.vmDefaults.vcpu, c.vcpu);
    assert.equal(cfg.vmDefaults.memoryMib, c.memoryMib);
    assert.equal(cfg.vmDefaults.memoryMib % 128, 0);
  });
}

test('a full config file', () => {
  const text = `
log_level = "debug"
vmm = "qemu"
accel = "tcg"
firecracker_bin = "/opt/fc/firecracker"
qemu_bin = "/usr/local/bin/qemu-system-x86_64"
ssh_key_path = "~/.ssh/id_ed25519"
ssh_wait_timeout = "2m"
insecure_registries = ["10.0.0.5:5000", "registry.lan:8080", "[::1]:5000"]
catalog = "https://example.com/catalog.json"
default_image_name = "my-image"
default_kernel_name = "my-kernel"
mirror = "http://deb.debian.org/debian"
network_mode = "bridge"
bridge_name = "br-fc-dev"
bridge_ip = "10.20.0.1"
cidr = 16
dns_listen = "127.0.0.1:5353"
auto_stop_stale_after = "1h30m"

max_unpacked_size = "100G"
warm_start = false
warm_start_background = false

[vm_defaults]
vcpu = 6
memory_mib = "3G"
disk_size = "20G"
system_overlay_size = 4096

[[file_sync]]
host = "~/.gitconfig"
guest = "~/.gitconfig"

[[file_sync]]
host = "/etc/secret"
guest = "/root/.config/secret"
mode = "0640"
`;
  const cfg = parseConfig(text, SRC, HOST);
  assert.deepEqual(cfg, {
    logLevel: 'debug',
    vmm: 'qemu',
    accel: 'tcg',
    firecrackerBin: '/opt/fc/firecracker',
    qemuBin: '/usr/local/bin/qemu-system-x86_64',
    sshKeyPath: '~/.ssh/id_ed25519',
    sshWaitTimeoutMs: 120_000,
    insecureRegistries: ['10.0.0.5:5000', 'registry.lan:8080', '[::1]:5000'],
    catalog: 'https://example.com/catalog.json',
    defaultImageName: 'my-image',
    defaultKernelName: 'my-kernel',
    mirror: 'http://deb.debian.org/debian',
    networkMode: 'bridge',
    bridgeName: 'br-fc-dev',
    bridgeIp: '10.20.0.1',
    cidr: 16,
    dnsListen: '127.0.0.1:5353',
    autoStopStaleAfterMs: 5_400_000,
    maxUnpackedBytes: 100 * G,
    warmStart: false,
    warmStartBackground: false,
    vmDefaults: { vcpu: 6, memoryMib: 3072, diskSizeBytes: 20 * G, systemOverlaySizeBytes: 4 * G },
    provenance: { vcpu: 'config', memoryMib: 'config', diskSizeBytes: 'config', systemOverlaySizeBytes: 'config' },
    fileSync: [
      { host: '~/.gitconfig', guest: '~/.gitconfig', mode: 0o600 },
      { host: '/etc/secret', guest: '/root/.config/secret', mode: 0o640 },
    ],
  } satisfies Config);
});

const partialCases: { name: string; text: string; check: (c: Config) => void }[] = [
  {
    name: 'only vcpu set keeps memory auto',
    text: '[vm_defaults]\nvcpu = 3\n',
    check: (c) => {
      assert.equal(c.vmDefaults.vcpu, 3);
      assert.equal(c.provenance.vcpu, 'config');
      assert.equal(c.vmDefaults.memoryMib, 2048);
      assert.equal(c.provenance.memoryMib, 'auto');
      assert.equal(c.provenance.diskSizeBytes, 'builtin');
    },
  },
  {
    name: 'memory_mib as an integer',
    text: '[vm_defaults]\nmemory_mib = 1024\n',
    check: (c) => assert.equal(c.vmDefaults.memoryMib, 1024),
  },
  {
    name: 'memory_mib as a bare number string',
    text: '[vm_defaults]\nmemory_mib = "768"\n',
    check: (c) => assert.equal(c.vmDefaults.memoryMib, 768),
  },
  {
    name: 'empty vm_defaults table',
    text: '[vm_defaults]\n',
    check: (c) => assert.deepEqual(c.provenance, defaultConfig(HOST).provenance),
  },
  {
    name: 'bridge_name br-fc',
    text: 'bridge_name = "br-fc"\n',
    check: (c) => assert.equal(c.bridgeName, 'br-fc'),
  },
  {
    name: 'auto_stop_stale_after 0',
    text: 'auto_stop_stale_after = "0"\n',
    check: (c) => assert.equal(c.autoStopStaleAfterMs, 0),
  },
  {
    name: 'file_sync mode with three digits',
    text: '[[file_sync]]\nhost = "a"\nguest = "~/a"\nmode = "755"\n',
    check: (c) => assert.deepEqual(c.fileSync, [{ host: 'a', guest: '~/a', mode: 0o755 }]),
  },
  {
    name: 'inline table syntax',
    text: 'vm_defaults = { disk_size = "16G" }\nfile_sync = [{ host = "h", guest = "/root/h" }]\n',
    check: (c) => {
      assert.equal(c.vmDefaults.diskSizeBytes, 16 * G);
      assert.deepEqual(c.fileSync, [{ host: 'h', guest: '/root/h', mode: 0o600 }]);
    },
  },
];
for (const c of partialCases) {
  test(`parseConfig: ${c.name}`, () => c.check(parseConfig(c.text, SRC, HOST)));
}

test('the host limits themselves are accepted: all its memory, all its CPUs, an 8T disk', () => {
  const c = parseConfig(
    '[vm_defaults]\nmemory_mib = 16384\nvcpu = 8\ndisk_size = "8T"\nsystem_overlay_size = "8T"\n',
    SRC,
    HOST,
  );
  assert.deepEqual(c.vmDefaults, {
    vcpu: 8,
    memoryMib: 16384,
    diskSizeBytes: 8 * 1024 * G,
    systemOverlaySizeBytes: 8 * 1024 * G,
  });
});

test('parseConfig does not share state between calls', () => {
  const a = parseConfig('[vm_defaults]\nvcpu = 3\n', SRC, HOST);
  const b = parseConfig('', SRC, HOST);
  assert.equal(a.vmDefaults.vcpu, 3);
  assert.equal(b.vmDefaults.vcpu, 2);
  assert.equal(b.provenance.vcpu, 'auto');
});

const errorCases: { name: string; text: string; message: RegExp | string; hint?: RegExp }[] = [
  {
    name: 'unknown key in vm_defaults',
    text: '[vm_defaults]\ncpus = 4\n',
    message: `${SRC}: unknown key "vm_defaults.cpus"`,
    hint: /^remove it or check the spelling; known keys: vm_defaults\.vcpu, vm_defaults\.memory_mib, vm_defaults\.disk_size, vm_defaults\.system_overlay_size$/,
  },
  {
    name: 'unknown top-level key',
    text: 'log_levle = "debug"\n',
    message: `${SRC}: unknown key "log_levle"`,
    hint: /known keys: .*log_level.*vm_defaults, file_sync$/,
  },
  {
    name: 'unknown key wins over the missing key it was meant to be',
    text: '[[file_sync]]\nhots = "a"\nguest = "~/a"\n',
    message: `${SRC}: unknown key "file_sync[0].hots"`,
    hint: /file_sync\[\]\.host/,
  },
  {
    name: 'bad enum',
    text: 'vmm = "kvmtool"\n',
    message: `${SRC}: invalid value for vmm: expected one of "auto", "firecracker", "qemu", got "kvmtool"`,
  },
  { name: 'wrong type', text: 'log_level = 3\n', message: /invalid value for log_level: expected one of .*, got 3$/ },
  {
    name: 'vcpu zero',
    text: '[vm_defaults]\nvcpu = 0\n',
    message: /invalid value for vm_defaults\.vcpu: expected an integer of at least 1, got 0/,
  },
  { name: 'vcpu fraction', text: '[vm_defaults]\nvcpu = 1.5\n', message: /vm_defaults\.vcpu/ },
  { name: 'memory too small', text: '[vm_defaults]\nmemory_mib = 64\n', message: /vm_defaults\.memory_mib/ },
  { name: 'memory not whole MiB', text: '[vm_defaults]\nmemory_mib = "1000K"\n', message: /vm_defaults\.memory_mib/ },
  {
    name: 'memory garbage',
    text: '[vm_defaults]\nmemory_mib = "lots"\n',
    message: /invalid size for vm_defaults\.memory_mib: "lots"/,
  },
  {
    name: 'bad size',
    text: '[vm_defaults]\ndisk_size = "1Q"\n',
    message: `${SRC}: invalid size for vm_defaults.disk_size: "1Q"`,
    hint: /^use a number with K, M or G/,
  },
  {
    name: 'size as boolean',
    text: '[vm_defaults]\nsystem_overlay_size = true\n',
    message: /invalid value for vm_defaults\.system_overlay_size: expected a size such as "8G", got true/,
  },
  {
    name: 'bad duration',
    text: 'ssh_wait_timeout = "soon"\n',
    message: `${SRC}: invalid duration for ssh_wait_timeout: "soon"`,
  },
  {
    name: 'duration as number',
    text: 'ssh_wait_timeout = 90\n',
    message: /ssh_wait_timeout: expected a duration string/,
  },
  { name: 'zero ssh wait', text: 'ssh_wait_timeout = "0"\n', message: /ssh_wait_timeout must be longer than 0/ },
  {
    name: 'bad auto stop',
    text: 'auto_stop_stale_after = "-1h"\n',
    message: /invalid duration for auto_stop_stale_after/,
  },
  {
    name: 'bad bridge name',
    text: 'bridge_name = "virbr0"\n',
    message: /invalid value for bridge_name: expected "br-fc" or "br-fc-<suffix>"/,
  },
  { name: 'bridge name prefix only', text: 'bridge_name = "br-fc-"\n', message: /bridge_name/ },
  { name: 'bridge name too long', text: 'bridge_name = "br-fc-0123456789"\n', message: /bridge_name/ },
  { name: 'bridge name lookalike', text: 'bridge_name = "br-fcx"\n', message: /bridge_name/ },
  {
    name: 'bad bridge ip',
    text: 'bridge_ip = "172.16.0.256"\n',
    message: /invalid value for bridge_ip: expected an IPv4 address/,
  },
  {
    name: 'cidr too big',
    text: 'cidr = 31\n',
    message: /invalid value for cidr: expected an integer prefix length from 1 to 30, got 31/,
  },
  { name: 'cidr zero', text: 'cidr = 0\n', message: /cidr/ },
  { name: 'dns_listen without port', text: 'dns_listen = "127.0.0.1"\n', message: /invalid value for dns_listen/ },
  { name: 'dns_listen hostname', text: 'dns_listen = "localhost:53"\n', message: /invalid value for dns_listen/ },
  {
    name: 'dns_listen port out of range',
    text: 'dns_listen = "127.0.0.1:70000"\n',
    message: /invalid value for dns_listen/,
  },
  {
    name: 'registry without port',
    text: 'insecure_registries = ["10.0.0.5"]\n',
    message: /invalid value for insecure_registries\[0\]: expected a "host:port" string/,
  },
  {
    name: 'registries not an array',
    text: 'insecure_registries = "10.0.0.5:5000"\n',
    message: /insecure_registries: expected an array/,
  },
  {
    name: 'mirror not a URL',
    text: 'mirror = "deb.debian.org"\n',
    message: /invalid value for mirror: expected an http\(s\) URL/,
  },
  { name: 'mirror ftp', text: 'mirror = "ftp://deb.debian.org/debian"\n', message: /mirror/ },
  { name: 'empty string', text: 'firecracker_bin = ""\n', message: /firecracker_bin/ },
  { name: 'network mode', text: 'network_mode = "tap"\n', message: /network_mode: expected one of "user", "bridge"/ },
  { name: 'vm_defaults not a table', text: 'vm_defaults = 4\n', message: /vm_defaults: expected a table/ },
  {
    name: 'file_sync guest outside home',
    text: '[[file_sync]]\nhost = "a"\nguest = "~/a"\n\n[[file_sync]]\nhost = "b"\nguest = "/etc/b"\n',
    message: `${SRC}: file_sync[1].guest must be a path under ~/ or /root/: "/etc/b"`,
  },
  {
    name: 'file_sync guest is home itself',
    text: '[[file_sync]]\nhost = "a"\nguest = "~/"\n',
    message: /file_sync\[0\]\.guest must be a path under/,
  },
  {
    name: 'file_sync guest relative',
    text: '[[file_sync]]\nhost = "a"\nguest = "a"\n',
    message: /file_sync\[0\]\.guest/,
  },
  {
    name: 'file_sync guest escapes',
    text: '[[file_sync]]\nhost = "a"\nguest = "/root/../etc/passwd"\n',
    message: /file_sync\[0\]\.guest must not contain "\.\."/,
  },
  {
    name: 'file_sync missing host',
    text: '[[file_sync]]\nguest = "~/a"\n',
    message: `${SRC}: missing required key "file_sync[0].host" (expected a non-empty string (path on the host))`,
  },
  {
    name: 'file_sync mode not octal',
    text: '[[file_sync]]\nhost = "a"\nguest = "~/a"\nmode = "0689"\n',
    message: /file_sync\[0\]\.mode: expected a string of octal digits/,
  },
  {
    name: 'file_sync mode as integer',
    text: '[[file_sync]]\nhost = "a"\nguest = "~/a"\nmode = 600\n',
    message: /file_sync\[0\]\.mode/,
  },
  {
    name: 'file_sync as a table',
    text: '[file_sync]\nhost = "a"\n',
    message: /file_sync: expected an array of tables/,
  },
  // Limits that depend on the host (HOST: 8 CPUs, 16 GiB) or on what a disk file can be.
  {
    name: 'memory above host RAM',
    text: '[vm_defaults]\nmemory_mib = 1e12\n',
    message: `${SRC}: vm_defaults.memory_mib 1000000000000 MiB is more than this host's memory: at most 16384 MiB`,
    hint: /lower vm_defaults\.memory_mib/,
  },
  {
    name: 'memory size string above host RAM',
    text: '[vm_defaults]\nmemory_mib = "17G"\n',
    message: /vm_defaults\.memory_mib 17408 MiB is more than this host's memory: at most 16384 MiB/,
  },
  {
    name: 'vcpu above host CPUs',
    text: '[vm_defaults]\nvcpu = 9\n',
    message: `${SRC}: vm_defaults.vcpu 9 is more than this host's 8 CPUs: at most 8`,
    hint: /lower vm_defaults\.vcpu/,
  },
  {
    name: 'disk size above the maximum',
    text: '[vm_defaults]\ndisk_size = "9T"\n',
    message: `${SRC}: vm_defaults.disk_size 9T is larger than the maximum disk size, 8T`,
  },
  {
    name: 'overlay size above the maximum',
    text: '[vm_defaults]\nsystem_overlay_size = 1e9\n',
    message: /vm_defaults\.system_overlay_size .* is larger than the maximum disk size, 8T/,
  },
];
for (const c of errorCases) {
  test(`parseConfig rejects: ${c.name}`, () => {
    assert.throws(
      () => parseConfig(c.text, SRC, HOST),
      (e: unknown) => {
        assert.ok(e instanceof AppError, String(e));
        assert.equal(e.code, 'bad_request');
        if (typeof c.message === 'string') assert.equal(e.message, c.message);
        else assert.match(e.message, c.message);
        assert.ok(e.message.startsWith(`${SRC}: `), e.message);
        if (c.hint !== undefined) assert.match(e.hint ?? '', c.hint);
        assert.ok((e.hint ?? '') !== '', 'every error has a hint');
        return true;
      },
    );
  });
}

const syntaxCases: { name: string; text: string; line: number }[] = [
  { name: 'unterminated array', text: 'log_level = "info"\ninsecure_registries = [\nvmm =', line: 3 },
  { name: 'missing value', text: 'vmm =\n', line: 1 },
  { name: 'duplicate key', text: 'vmm = "qemu"\nvmm = "auto"\n', line: 2 },
  { name: 'bare string', text: '\n\nlog_level = debug\n', line: 3 },
];
for (const c of syntaxCases) {
  test(`parseConfig reports TOML syntax errors: ${c.name}`, () => {
    assert.throws(
      () => parseConfig(c.text, 'config.toml', HOST),
      (e: unknown) => {
        assert.ok(e instanceof AppError);
        assert.equal(e.code, 'bad_request');
        assert.match(e.message, new RegExp(`^config\\.toml: invalid TOML at line ${c.line}, column \\d+: `));
        assert.match(e.hint ?? '', new RegExp(`line ${c.line} of config\\.toml`));
        assert.ok((e.detail ?? '').length > 0, 'detail carries the code excerpt');
        return true;
      },
    );
  });
}
