#!/usr/bin/env bash
# The demo: a small web app (files + a live SQLite database + a command's output) backed up to a
# local target, then `list`, `verify`, `drill`, `restore` and `status`. Needs no servers. Everything lives in $BACKPROOF_DEMO_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=${BACKPROOF_DEMO_DIR:-${TMPDIR:-/tmp}/backproof-demo}
npm run --silent build

mkdir -p "$demo/app/public/uploads" "$demo/app/storage/logs" "$demo/app/node_modules/left-pad" "$demo/backups"
for i in $(seq 1 50); do printf '<?php // page %d\necho "hello %d";\n' "$i" "$i" > "$demo/app/public/page-$i.php"; done
head -c 300000 /dev/urandom > "$demo/app/public/uploads/photo.jpg"
printf 'APP_KEY=base64:demo\nDB_PASSWORD=not-a-real-one\n' > "$demo/app/.env"
printf 'module.exports = () => 0;\n' > "$demo/app/node_modules/left-pad/index.js"
date -u +'%FT%TZ demo started' >> "$demo/app/storage/logs/app.log"
node --input-type=module -e '
  // The same SQLite driver backproof uses on this Node (node:sqlite, or better-sqlite3 on Node 20).
  const { openSqlite } = await import("./dist/lib/sqlite.js");
  const db = openSqlite(process.argv[1]);
  db.pragma("journal_mode = WAL");
  db.exec("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)");
  db.exec("CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, data BLOB)");
  // Filled once: a demo run again backs up the same rows (adding 1,000 each time would, by the
  // fourth run, double the median and stop the demo with an anomaly warning).
  const insert = db.prepare("INSERT INTO users (email) VALUES (?)");
  if (db.prepare("SELECT count(*) AS n FROM users").get().n === 0) {
    db.transaction(() => { for (let i = 0; i < 1000; i++) insert.run(`user${i}@example.com`); })();
  }
  db.close();
' "$demo/app/database.sqlite"

cat > "$demo/backproof.yml" <<YAML
# A demo job: see sample/backproof.example.yml for every option.
job: demo-app
stateDir: $demo/state
objectives: { rpo: 26h, rto: 4h }
sources:
  - { name: app, type: files, paths: [$demo/app], exclude: ["**/node_modules", "storage/logs/**", "*.sqlite*"] }
  - { name: db, type: sqlite, path: $demo/app/database.sqlite }
  - { name: uname, type: command, command: "uname -a; date -u", extension: txt }
targets:
  - { name: disk, type: local, path: $demo/backups }
checks: { minFree: { bytes: 100MB, percent: 5% } }
YAML

cli="node dist/cli.js --config $demo/backproof.yml"
echo "== backproof backup   (config: $demo/backproof.yml)"
# Exit 3 is a committed set with warnings (an anomaly after edits to the demo tree, say): the demo goes on.
$cli backup || [ $? -eq 3 ]
echo
echo "== backproof list"
$cli list
echo
echo "== backproof verify --set all   (re-hash every object, check the hash chain)"
$cli verify --set all
echo
echo "== backproof drill   (restore into a sandbox, compare every file with the index, check the SQLite rows, time it)"
$cli drill
echo
echo "== backproof restore --set latest --to $demo/restored"
rm -rf "$demo/restored"
$cli restore --set latest --to "$demo/restored"
echo
echo "== backproof status"
$cli status
echo
echo "The set is plain files: try  ls -R $demo/backups  and  zstd -dc $demo/backups/demo-app/*/*/*/*/app.tar.zst | tar -tv | head"
