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
for tool in zstd tar sqlite3 sha256sum runuser mkfifo mknod; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/install-test-deps.sh" >&2; exit 2; }
done

npx biome check src test scripts
npx tsc -p tsconfig.json --noEmit
npm run --silent build

if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(find test -name '*.test.ts' | sort); fi
export AWS_EC2_METADATA_DISABLED=true
exec node --import tsx --test --test-reporter=spec --test-concurrency=2 "${files[@]}"
