#!/usr/bin/env bash
# Installs what the tests need from Debian packages, only when missing (CI and fresh machines).
# Fast when everything is present: one dpkg-query call, no apt at all.
# Needs root on Debian 12.
set -euo pipefail

packages=(
  # real servers the tests start on loopback (scripts/test-services.sh)
  mariadb-server mariadb-client postgresql postgresql-client openssh-server openssh-client
  swift swift-proxy swift-object swift-container swift-account python3-swift memcached
  # tools the code and the tests call
  zstd sqlite3 curl util-linux coreutils tar python3 make g++
  # systemd-analyze verifies the generated timers and services (systemd need not be running)
  systemd
  # peers for benchmarks and later issues
  age restic borgbackup
  # the dashboard's end-to-end test drives Debian's Chromium through playwright-core (no browser download)
  chromium
)

# `dpkg-query -W` lists known packages with their state; anything not "install ok installed"
# (or unknown to dpkg) is missing.
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null | awk '$2=="install" && $4=="installed" {print $1}' || true)
need=()
for p in "${packages[@]}"; do
  grep -qxF "$p" <<<"$installed" || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: missing ${need[*]}; run this script as root (it uses apt-get)." >&2
  exit 2
fi
echo "install-test-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}"
