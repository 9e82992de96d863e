#!/usr/bin/env bash
# The whole test suite: lint, type check, build, then every test file with node's test runner.
# Needs root (tests mount tmpfs, create device nodes and run parts as the `nobody` user).
# Usage: npm test [-- test/some.test.ts ...]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "npm test needs root: the tests mount tmpfs disks, make device nodes and run as 'nobody'." >&2
  exit 2
fi
for tool in zstd tar sqlite3 sha256sum runuser mkfifo mknod setsid flock curl mariadbd mariadb psql sshd memcached swift-proxy-server; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/install-test-deps.sh" >&2; exit 2; }
done

npx biome check src test scripts
npx tsc -p tsconfig.json --noEmit
npm run --silent build

if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(find test -name '*.test.ts' | sort); fi

# Real MariaDB, PostgreSQL, sshd and S3 (Swift) on loopback. This run leases them: the last run to
# finish stops what was started for it, and services someone started by hand stay up. With
# BACKPROOF_KEEP_SERVICES=1 they stay up afterwards (faster reruns; stop: scripts/test-services.sh stop).
export BACKPROOF_SERVICES_DIR=${BACKPROOF_SERVICES_DIR:-/tmp/backproof-services}
export AWS_EC2_METADATA_DISABLED=true
keep=${BACKPROOF_KEEP_SERVICES:-0}
runner=''
# shellcheck disable=SC2317 # (run by the EXIT trap)
finish() {
  trap '' INT TERM
  if [ -n "$runner" ]; then # interrupted: stop the runner and its test processes first
    kill -TERM -- "-$runner" 2>/dev/null || true
    wait "$runner" 2>/dev/null || true
  fi
  if [ "$keep" != 1 ]; then bash scripts/test-services.sh release $$ || true; fi
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ "$keep" = 1 ]; then bash scripts/test-services.sh start; else bash scripts/test-services.sh acquire $$; fi

# The runner gets its own process group (so one signal stops it and every test process) and is
# waited for in the background, so SIGINT/SIGTERM reach the traps above at once.
# A test file that hangs (a stuck stream after a failed assertion, say) fails with its name after
# 10 minutes instead of holding the whole run; the slowest file takes about 2 minutes.
test_timeout_ms=${BACKPROOF_TEST_TIMEOUT_MS:-600000}
setsid node --import tsx --test --test-reporter=spec --test-concurrency=2 --test-timeout="$test_timeout_ms" "${files[@]}" &
runner=$!
status=0
wait "$runner" || status=$?
runner=''
exit "$status"
