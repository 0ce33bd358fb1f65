/* The guest bootstrap script (SPEC §7.4): applies the banger.* kernel parameters at boot, and the
   identity a restored guest gets through the agent (docs/warm-start.md). Part of the guest assets
   (assets.ts, which bumps ASSETS_VERSION when it changes). */

/** Where the gate opens (the bootstrap's `identity gate=1` creates it; `gate` waits for it). */
export const GATE_OPEN_PATH = '/run/banger/gate-open';
/** Present (written by the agent for the host): the host made this VM's ssh host key (services/vm/hostkey.ts). */
export const HOST_KEY_GIVEN = '/run/banger-host-key-given';

/**
 * Runs before udev, networking and sshd. Reads the per-VM identity from
 * banger.* kernel parameters so the shared base image is never edited per VM.
 * Disks are found by their virtio serial (device order is not stable on
 * virtio-mmio), or by the /dev/ path the host gives (firecracker, which fixes the order).
 */
export const BOOTSTRAP_SCRIPT = `#!/bin/sh
# banger guest bootstrap: applies the banger.* kernel parameters.
set -u
log() { echo "banger-bootstrap: $*" >/dev/console 2>/dev/null || echo "banger-bootstrap: $*"; }

# No fork: the kernel's hostname through /proc, /etc/hosts rewritten by the shell (127.0.1.1 names this VM).
set_hostname() {
  echo "$1" >/etc/hostname
  echo "$1" >/proc/sys/kernel/hostname 2>/dev/null || hostname "$1"
  hosts= found=
  if [ -r /etc/hosts ]; then
    while IFS= read -r line || [ -n "$line" ]; do
      case "$line" in
        127.0.1.1[[:space:]]*) [ -z "$found" ] && hosts="\${hosts}127.0.1.1	$1
"; found=1 ;;
        *) hosts="\${hosts}$line
" ;;
      esac
    done </etc/hosts
  fi
  [ -n "$found" ] || hosts="\${hosts}127.0.1.1	$1
"
  printf '%s' "$hosts" >/etc/hosts
}

set_dns() {
  # A link (systemd-resolved's stub) goes; a file is rewritten in place (no fork).
  [ -L /etc/resolv.conf ] && rm -f /etc/resolv.conf
  echo "nameserver $1" >/etc/resolv.conf
}

# Each VM makes its own host key (images ship none; a template boot makes none: see gate).
host_key() {
  [ -s /etc/ssh/ssh_host_ed25519_key ] && return 0
  command -v ssh-keygen >/dev/null 2>&1 || return 0
  ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key || { log "ssh-keygen failed"; return 1; }
}

# mountinfo's fifth field is the mount point (read by the shell: no fork).
is_mounted() {
  while read -r _ _ _ _ mp _; do [ "$mp" = "$1" ] && return 0; done </proc/self/mountinfo
  return 1
}

# A VM restored from a snapshot of a running VM: its sshd runs with the parent's host key. A new
# key, then the running sshd reloads (SIGHUP: it re-executes and reads its keys again).
rekey() {
  rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
  host_key || return 1
  reload_sshd
}

reload_sshd() {
  if [ -d /run/systemd/system ]; then
    for u in ssh.service sshd.service; do
      systemctl -q is-active "$u" 2>/dev/null && { systemctl reload "$u" || return 1; return 0; }
    done
  fi
  pid=; [ -r /run/sshd.pid ] && read -r pid </run/sshd.pid
  [ -z "$pid" ] || kill -HUP "$pid"
}

# banger-gate.service of a template boot (banger.template=1): waits until the agent opens the gate
# (\`identity gate=1\`) once the restored guest has its own identity; sshd waits for it.
# Holding the FIFO open read-write, a wake-up written before the read is never lost.
gate_wait() {
  mkdir -p /run/banger
  [ -p /run/banger/gate ] || mkfifo -m 600 /run/banger/gate || return 1
  exec 3<>/run/banger/gate
  while [ ! -e ${GATE_OPEN_PATH} ]; do read -r line <&3 || sleep 1; done
  exec 3<&-
  log "gate open"
}

# move_iface IFACE MAC IP [GW]: the NIC's new MAC and address, one ip command each.
move_iface() {
  ip link set dev "$1" down &&
    ip link set dev "$1" address "$2" &&
    { ip addr flush dev "$1" scope global; ip addr add "$3" dev "$1"; } &&
    ip link set dev "$1" up &&
    { [ -z "$4" ] || ip route replace default via "$4" dev "$1"; } ||
    { log "cannot move $1 to $2 $3"; return 1; }
}

# The agent's SET_IDENTITY (after its clock, entropy and sethostname): files, network, the gate.
apply_identity() {
  status=0 hostname= machine_id= ip= gw= dns= mac= gate=
  for a in "$@"; do
    case "$a" in
      hostname=*) hostname=\${a#*=} ;;
      machine_id=*) machine_id=\${a#*=} ;;
      ip=*) ip=\${a#*=} ;;
      gw=*) gw=\${a#*=} ;;
      dns=*) dns=\${a#*=} ;;
      mac=*) mac=\${a#*=} ;;
      gate=*) gate=\${a#*=} ;;
    esac
  done
  [ -n "$hostname" ] && { set_hostname "$hostname" || status=1; }
  if [ -n "$machine_id" ]; then
    # A template's id is transient (mounted over /etc/machine-id): this VM's own is written to its disk.
    if is_mounted /etc/machine-id; then umount /etc/machine-id || { log "cannot unmount /etc/machine-id"; status=1; }; fi
    printf '%s\\n' "$machine_id" >/etc/machine-id || status=1
    [ -f /run/machine-id ] && printf '%s\\n' "$machine_id" >/run/machine-id
  fi
  if [ -n "$ip" ] && [ -n "$mac" ]; then
    # A restored guest's NIC still has the template's MAC and address: the one with the MAC, else the first Ethernet.
    iface=
    for n in /sys/class/net/*; do
      a=; read -r a 2>/dev/null <"$n/address" || true
      [ "$a" = "$mac" ] && iface=\${n##*/}
    done
    if [ -z "$iface" ]; then
      for n in /sys/class/net/*; do
        t=; read -r t 2>/dev/null <"$n/type" || true
        [ "$t" = 1 ] && [ "\${n##*/}" != lo ] && { iface=\${n##*/}; break; }
      done
    fi
    if [ -z "$iface" ]; then
      log "no Ethernet interface for MAC $mac"
      status=1
    else
      # qemu's user-mode network learnt the template's MAC (the guest's announce after the restore):
      # with arp_notify the kernel announces the new MAC and address when the link comes up again,
      # or every packet to the guest (ssh included) goes to the old MAC and is dropped.
      echo 1 >"/proc/sys/net/ipv4/conf/$iface/arp_notify" 2>/dev/null || true
      # One ip for all of it (each fork costs tens of ms under emulation; it stops at the first
      # error); busybox's ip has no -batch: one command each.
      route=; [ -n "$gw" ] && route="route replace default via $gw dev $iface"
      ip -batch - 2>/dev/null <<EOF || move_iface "$iface" "$mac" "$ip" "$gw" || status=1
link set dev $iface down
link set dev $iface address $mac
addr flush dev $iface scope global
addr add $ip dev $iface
link set dev $iface up
$route
EOF
    fi
  fi
  [ -n "$dns" ] && { set_dns "$dns" || status=1; }
  if [ "$gate" = 1 ]; then
    given=; [ -r ${HOST_KEY_GIVEN} ] && read -r given <${HOST_KEY_GIVEN}
    if [ -n "$given" ]; then
      # The host made this VM's key and the agent wrote it (a restore: no ssh-keygen here).
      [ "$given" = reload ] && { reload_sshd || { log "cannot reload sshd"; status=1; }; }
    else
      if [ -s /etc/ssh/ssh_host_ed25519_key ]; then rekey || { log "cannot make a new host key"; status=1; }; fi
      host_key || status=1
    fi
    { [ -d /run/banger ] || mkdir -p /run/banger; } && : >${GATE_OPEN_PATH} || status=1
    [ -p /run/banger/gate ] && echo open 1<>/run/banger/gate
  fi
  # journald names its files by machine-id: it restarts with the new one once sshd has started (a
  # transient unit ordered after it: the two would share the vCPU), in the background (the agent
  # answers without waiting; until then journald logs under the template's id).
  if [ -n "$machine_id" ] && [ -d /run/systemd/system ]; then
    (systemd-run --no-block --quiet --collect --unit=banger-journald-restart --property=After=ssh.service \\
      --property=After=sshd.service systemctl restart systemd-journald.service ||
      log "cannot restart journald") >/dev/null 2>&1 &
  fi
  return $status
}

case "\${1:-}" in
  gate) gate_wait; exit ;;
  identity) shift; apply_identity "$@"; exit ;;
esac

# Under TCG every fork+exec costs tens of ms on the boot's critical path: read files with \`read\`.
cmdline=; read -r cmdline </proc/cmdline || true
hostname=; ip=; gw=; dns=; mac=; work=; modules=; root=; template=
for arg in $cmdline; do
  case "$arg" in
    banger.template=1) template=1 ;;
    banger.root=*) root=\${arg#*=} ;;
    banger.hostname=*) hostname=\${arg#*=} ;;
    banger.ip=*) ip=\${arg#*=} ;;
    banger.gw=*) gw=\${arg#*=} ;;
    banger.dns=*) dns=\${arg#*=} ;;
    banger.mac=*) mac=\${arg#*=} ;;
    banger.work=*) work=\${arg#*=} ;;
    banger.modules=*) modules=\${arg#*=} ;;
  esac
done

# A /dev/ path is the device itself (firecracker cannot set serials; the host names the device).
disk_by_serial() {
  case "$1" in /dev/*) [ -e "$1" ] && echo "$1"; return ;; esac
  for d in /sys/block/*; do
    [ -r "$d/serial" ] || continue
    s=; read -r s <"$d/serial" || true
    if [ "$s" = "$1" ]; then echo "/dev/\${d##*/}"; return 0; fi
  done
  return 1
}

# The root disk is a copy-on-write layer whose virtual size is system_overlay_size:
# grow the filesystem into it (online, in the background: boot does not wait; at nice 19, so under
# emulation it does not take the vCPU from sshd and the first login).
if [ -n "$root" ] && dev=$(disk_by_serial "$root"); then
  (nice -n 19 resize2fs "$dev" >/dev/null 2>&1 || log "cannot grow the root filesystem on $dev") &
fi

if [ -n "$modules" ] && dev=$(disk_by_serial "$modules"); then
  rel=; read -r rel </proc/sys/kernel/osrelease || true
  dir=/lib/modules/$rel
  { [ -d "$dir" ] || mkdir -p "$dir"; } && mount -o ro "$dev" "$dir" || log "cannot mount the modules disk $dev"
fi

if [ -n "$work" ]; then
  if dev=$(disk_by_serial "$work"); then
    mount -o noatime "$dev" /root || log "cannot mount the work disk $dev on /root"
  else
    log "no work disk $work (by serial or device)"
  fi
fi

[ -n "$hostname" ] && set_hostname "$hostname"

ip link set lo up
if [ -n "$ip" ] && [ -n "$mac" ]; then
  iface=
  for n in /sys/class/net/*; do
    a=; read -r a 2>/dev/null <"$n/address" || true
    [ "$a" = "$mac" ] && iface=\${n##*/}
  done
  if [ -n "$iface" ]; then
    ip link set "$iface" up
    ip addr replace "$ip" dev "$iface"
    [ -n "$gw" ] && ip route replace default via "$gw" dev "$iface"
  else
    log "no network interface with MAC $mac"
  fi
fi
[ -n "$dns" ] && set_dns "$dns"

if [ -n "$template" ]; then
  # A template (docs/warm-start.md): no host key (the gate makes the restored VM's own), and a
  # machine-id that never reaches the disk every VM restored from it shares.
  if ! is_mounted /etc/machine-id; then
    IFS=- read -r a b c d e </proc/sys/kernel/random/uuid
    mkdir -p /run/banger && echo "$a$b$c$d$e" >/run/banger/machine-id && : >>/etc/machine-id &&
      mount --bind /run/banger/machine-id /etc/machine-id || log "cannot make the template's machine-id transient"
  fi
else
  host_key
fi
log "ready"
`;
