#!/usr/bin/env bash
# Installs what the tests need from Debian packages, only when missing (CI and fresh machines).
set -euo pipefail
need=()
command -v zstd >/dev/null || need+=(zstd)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v runuser >/dev/null || need+=(util-linux)
command -v mknod >/dev/null || need+=(coreutils)
command -v python3 >/dev/null || need+=(python3)
command -v make >/dev/null || need+=(make)
command -v g++ >/dev/null || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}"
fi
