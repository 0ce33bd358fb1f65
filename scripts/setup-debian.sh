#!/bin/sh
# One-command setup for a fresh Debian 12 host: system packages, npm
# dependencies, build, and `banger` / `bangerd` on PATH. Run as root (or with sudo).
set -eu
cd "$(dirname "$0")/.."
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  ca-certificates git gcc libc6-dev make python3 g++ \
  qemu-system-x86 qemu-utils e2fsprogs mmdebstrap openssh-client iproute2 kmod cpio \
  zstd skopeo umoci docker-registry apache2-utils dnsutils xfsprogs iptables procps busybox-static
command -v node >/dev/null 2>&1 || $SUDO apt-get install -y -q nodejs npm
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "banger needs Node.js 20 or newer; this host has $(node --version)." >&2
  echo "Install Node 20 (e.g. from your distribution's backports or NodeSource), then rerun this script." >&2
  exit 1
fi
npm ci --no-audit --no-fund
npm run build
$SUDO npm link --no-audit --no-fund >/dev/null
echo "banger is installed: $(command -v banger). Try: banger doctor && banger vm run"
