#!/bin/sh
# The B3 peer (docs/BENCHMARKS.md): boots the default image's kernel, initrd and a raw copy of its
# rootfs with a qemu command line written out by hand below -- none of banger's argv or cmdline
# builders -- and times qemu start -> `ssh root@... true` succeeding. Prints one duration (ms) per run.
#
#   scripts/bench/bare-boot.sh [RUNS]      (default 1; run with the bench home's XDG variables)
#   BARE_SMP=N BARE_MEM_MIB=M              the vCPUs and memory (default 1, 1024); the bench passes
#                                          those a default `vm run` VM gets, so both boot the same VM size
#
# What the guest gets: one raw root disk (no work disk, no modules disk), a host key and root's
# authorized_keys written into the copy beforehand, and only the kernel parameters the image needs
# to come up on the network: root=, banger.ip/gw/dns, banger.mac (the bootstrap picks the interface
# by it) and, under TCG, tsc_early_khz/lpj (the kernel can hang calibrating its TSC otherwise,
# docs/TESTING.md). Network: qemu user mode with restrict=on; ssh forwarded to a loopback port.
set -eu

RUNS=${1:-1}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BANGER="node $REPO/bin/banger.js"
STATE=${XDG_STATE_HOME:-$HOME/.local/state}/banger
KEY=$STATE/ssh/id_ed25519
MEM_MIB=${BARE_MEM_MIB:-1024}
SMP=${BARE_SMP:-1}

IMG_JSON=$($BANGER image show debian-bookworm --json)
field() { printf '%s' "$IMG_JSON" | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s)['$1']))"; }
ROOTFS=$(field rootfs)
KDIR=$(field dir)/kernel
KHZ=$(awk -F': ' '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bare-boot.XXXXXX")
QPID=
cleanup() {
  [ -n "$QPID" ] && kill -9 "$QPID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

i=0
while [ "$i" -lt "$RUNS" ]; do
  i=$((i + 1))
  # --- preparation (not timed): a raw copy with a host key and root's authorized key ---
  cp --sparse=always "$ROOTFS" "$WORK/root.raw"
  rm -f "$WORK/hostkey" "$WORK/hostkey.pub"
  ssh-keygen -q -t ed25519 -N '' -f "$WORK/hostkey"
  debugfs -w -f - "$WORK/root.raw" >/dev/null 2>&1 <<EOF
mkdir /root/.ssh
write $KEY.pub /root/.ssh/authorized_keys
sif /root/.ssh/authorized_keys mode 0100600
sif /root/.ssh mode 040700
write $WORK/hostkey /etc/ssh/ssh_host_ed25519_key
sif /etc/ssh/ssh_host_ed25519_key mode 0100600
write $WORK/hostkey.pub /etc/ssh/ssh_host_ed25519_key.pub
EOF
  PORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")

  # --- timed: qemu start -> ssh true ---
  T0=$(date +%s%N)
  qemu-system-x86_64 \
    -M microvm -accel tcg -cpu max -smp "$SMP" -m "$MEM_MIB" \
    -nodefaults -no-user-config -display none \
    -kernel "$KDIR/bzImage" -initrd "$KDIR/initrd.img" \
    -append "console=ttyS0 root=/dev/vda rw banger.ip=10.0.2.15/24 banger.gw=10.0.2.2 banger.dns=10.0.2.3 banger.mac=52:54:00:12:34:56 tsc_early_khz=$KHZ lpj=$((KHZ * 4))" \
    -serial "file:$WORK/console.log" \
    -drive "id=root,file=$WORK/root.raw,format=raw,if=none" -device virtio-blk-device,drive=root \
    -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:22" \
    -device virtio-net-device,netdev=n0,mac=52:54:00:12:34:56 &
  QPID=$!
  ok=
  tries=0
  while [ "$tries" -lt 720 ]; do # 720 x (>= 0.25 s) bounds the wait at 3 min or more
    tries=$((tries + 1))
    if ssh -F none -i "$KEY" -p "$PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
      -o BatchMode=yes -o ConnectTimeout=2 -o LogLevel=ERROR root@127.0.0.1 true 2>/dev/null; then
      ok=1
      break
    fi
    kill -0 "$QPID" 2>/dev/null || break
    sleep 0.25
  done
  T1=$(date +%s%N)
  kill -9 "$QPID" 2>/dev/null || true
  wait "$QPID" 2>/dev/null || true
  QPID=
  if [ -z "$ok" ]; then
    echo "bare boot did not reach ssh; console tail:" >&2
    tail -n 20 "$WORK/console.log" >&2 || true
    exit 1
  fi
  echo $(((T1 - T0) / 1000000))
done
