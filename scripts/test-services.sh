#!/usr/bin/env bash
# Real servers for the tests, on 127.0.0.1 only, on non-default ports, without systemd:
#   mariadb   MariaDB 10.11 (mariadbd --no-defaults)        port 13306 + own socket
#   postgres  PostgreSQL 15 (initdb/pg_ctl as user postgres) port 15432 + own socket dir
#   ssh       OpenSSH sshd, users bpnas (shell) and bpsftp (chrooted, SFTP only)  port 2222
#   s3        OpenStack Swift + s3api + tempauth + memcached, proxy on port 18080
# Everything lives in $BACKPROOF_SERVICES_DIR (default /tmp/backproof-services), except the
# SFTP chroot, which sshd refuses under /tmp (/srv/backproof-test-chroot and its key dir).
# After a start, $DIR/services.json describes it all for the tests (test/helpers/services.ts).
#
# Usage: test-services.sh start [NAME...]   start what is not answering (a healthy service is left alone)
#        test-services.sh stop [NAME...]    stop what this script started (TERM, then KILL); safe to repeat
#        test-services.sh restart NAME...   stop and start again (for tests that kill a server)
#        test-services.sh status            one line per service; exit 0 when all answer, 3 otherwise
#        test-services.sh acquire ID        for scripts/test.sh: lease the services for a test run (starts them)
#        test-services.sh release ID        end that lease; the last lease stops what acquire started
#        test-services.sh clean             stop, then remove the directory, the chroot and the test users
# Services started by `start` stay up until `stop`. Services that `acquire` had to start are
# stopped by the `release` that ends the last live lease, so parallel test runs share them safely.
set -euo pipefail
export LC_ALL=C

DIR=${BACKPROOF_SERVICES_DIR:-/tmp/backproof-services}
# A private set (port offset) gets its own users and chroot: system users are global, and sharing
# them would let one sshd's setup break the other's logins.
SUFFIX=''
[ "${BACKPROOF_SERVICES_PORT_OFFSET:-0}" = 0 ] || SUFFIX="p${BACKPROOF_SERVICES_PORT_OFFSET}"
NAS_USER="bpnas$SUFFIX"
SFTP_USER="bpsftp$SUFFIX"
CHROOT="/srv/backproof-test-chroot$SUFFIX"
SFTP_KEYS="/srv/backproof-test-sshkeys$SUFFIX"
# BACKPROOF_SERVICES_PORT_OFFSET moves every port, so a test that must kill a server can start a
# private set beside the shared one (with its own BACKPROOF_SERVICES_DIR): see privateServices().
OFFSET=${BACKPROOF_SERVICES_PORT_OFFSET:-0}
MARIADB_PORT=$((13306 + OFFSET))
POSTGRES_PORT=$((15432 + OFFSET))
SSH_PORT=$((2222 + OFFSET))
S3_PORT=$((18080 + OFFSET))
SWIFT_BASE_PORT=$((16010 + OFFSET)) # object, container, account: base to base+2
MEMCACHED_PORT=$((11311 + OFFSET))
PG_BIN=/usr/lib/postgresql/15/bin
SWIFT_PYTHON=/usr/bin/python3 # Debian's python: the one that can import swift (not pyenv's)
ALL_SERVICES=(mariadb postgres ssh s3)
START_TIMEOUT_TENTHS=300 # 30 s per service
STOP_TIMEOUT_TENTHS=100  # 10 s of TERM before KILL

say() { echo "test-services: $*" >&2; }
die() {
  say "$*"
  exit 1
}

# --- processes ----------------------------------------------------------------------------------

# True when PID runs (not a zombie) and its command line contains MARK, so a stale pid file that
# now names an unrelated process is never signalled.
# (Builtins only: these checks run often, on a busy machine.)
owned_pid() {
  local pid=$1 mark=$2 stat state args
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  read -r stat 2>/dev/null <"/proc/$pid/stat" || return 1
  state=${stat##*) }
  state=${state%% *}
  [[ -n $state && $state != Z && $state != X ]] || return 1
  mapfile -d '' args 2>/dev/null <"/proc/$pid/cmdline" || return 1
  [[ "${args[*]}" == *"$mark"* ]]
}

# The first line of a pid file (postmaster.pid has more lines), or nothing.
pid_from() {
  local line=''
  [ -f "$1" ] && read -r line 2>/dev/null <"$1"
  [[ $line =~ ^[0-9]+$ ]] && echo "$line"
  return 0
}

# Stops the process in PIDFILE if it is ours: TERM, wait, then KILL. Removes the pid file.
stop_pidfile() {
  local pidfile=$1 mark=$2 pid i
  pid=$(pid_from "$pidfile")
  if [ -n "$pid" ] && owned_pid "$pid" "$mark"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT_TENTHS; i++)); do
      owned_pid "$pid" "$mark" || break
      sleep 0.1
    done
    if owned_pid "$pid" "$mark"; then
      say "pid $pid ($(basename "$pidfile")) ignored SIGTERM for $((STOP_TIMEOUT_TENTHS / 10)) s: sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        owned_pid "$pid" "$mark" || break
        sleep 0.1
      done
      owned_pid "$pid" "$mark" && die "pid $pid ($pidfile) survived SIGKILL"
    fi
  fi
  rm -f "$pidfile"
}

pidfile_alive() {
  local pid=''
  [ -f "$1" ] && read -r pid 2>/dev/null <"$1"
  owned_pid "$pid" "$2"
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Refuses to start when something that is not ours listens on a port we need.
require_free_port() {
  local port=$1 service=$2 who
  if tcp_open "$port"; then
    who=$(ss -ltnpH "sport = :$port" 2>/dev/null | grep -o 'users:.*' | head -n1 || true)
    die "$service: port $port on 127.0.0.1 is already in use ${who:+by $who }and not by our $service; stop that process, or run \`$0 stop\` if it is a leftover from another services dir"
  fi
}

# Waits (bounded) until CHECK succeeds; on timeout or when the process dies, prints the log tail and fails.
wait_until() {
  local service=$1 log=$2 check=$3 alive=$4 i
  for ((i = 0; i < START_TIMEOUT_TENTHS; i++)); do
    if $check; then return 0; fi
    if ! $alive; then
      say "$service: the server exited while starting; last lines of $log:"
      tail -n 25 "$log" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.1
  done
  say "$service: no answer after $((START_TIMEOUT_TENTHS / 10)) s; last lines of $log:"
  tail -n 25 "$log" >&2 2>/dev/null || true
  exit 1
}

# Starts a long-running foreground server in its own session (so a Ctrl-C aimed at the test run does
# not reach it) with its output in LOG, and records its pid.
launch() {
  local pidfile=$1 log=$2
  shift 2
  # 9>&-: the server must not inherit (and hold forever) the lock on $DIR/.lock.
  setsid "$@" </dev/null >>"$log" 2>&1 9>&- &
  echo $! >"$pidfile"
}

# --- MariaDB ------------------------------------------------------------------------------------

M=$DIR/mariadb
MARIADB_MARK="--datadir=$M/data"
mariadb_answers() { mariadb-admin --no-defaults --socket="$M/run/mysqld.sock" -uroot --connect-timeout=2 ping >/dev/null 2>&1; }
mariadb_alive() { pidfile_alive "$M/run/mysqld.pid" "$MARIADB_MARK"; }
mariadb_up() { mariadb_alive && mariadb_answers; }

mariadb_start() {
  mariadb_up && return 0
  mariadb_stop
  require_free_port "$MARIADB_PORT" mariadb
  mkdir -p "$M/data" "$M/run"
  if [ ! -d "$M/data/mysql" ]; then
    rm -rf "${M:?}/data" && mkdir -p "$M/data"
    mariadb-install-db --no-defaults --user=root --datadir="$M/data" --auth-root-authentication-method=normal \
      --skip-test-db --skip-name-resolve >"$M/install.log" 2>&1 ||
      {
        tail -n 25 "$M/install.log" >&2
        die "mariadb: mariadb-install-db failed (log: $M/install.log)"
      }
  fi
  launch "$M/run/mysqld.pid" "$M/error.log" mariadbd --no-defaults --user=root --datadir="$M/data" \
    --socket="$M/run/mysqld.sock" --pid-file="$M/run/mysqld.pid" --port="$MARIADB_PORT" \
    --bind-address=127.0.0.1 --skip-name-resolve --log-error="$M/error.log" \
    --innodb-buffer-pool-size=64M --skip-log-bin --max-connections=500
  wait_until mariadb "$M/error.log" mariadb_answers mariadb_alive
  # install-db adds root@<hostname>, which --skip-name-resolve cannot load: `mariadb-dump
  # --system=users` then fails on it. Only loopback accounts are wanted here.
  mariadb --no-defaults --socket="$M/run/mysqld.sock" -uroot -e \
    "DELETE FROM mysql.global_priv WHERE User='root' AND Host NOT IN ('localhost','127.0.0.1','::1'); FLUSH PRIVILEGES;" ||
    die "mariadb: could not remove the root@<hostname> account"
}

mariadb_stop() { stop_pidfile "$M/run/mysqld.pid" "$MARIADB_MARK"; }

# --- PostgreSQL ---------------------------------------------------------------------------------

P=$DIR/postgres
POSTGRES_MARK="-D $P/data"
postgres_answers() { "$PG_BIN/pg_isready" -q -h "$P/run" -p "$POSTGRES_PORT" -t 2 >/dev/null 2>&1; }
postgres_alive() { pidfile_alive "$P/data/postmaster.pid" "$POSTGRES_MARK"; }
postgres_up() { postgres_alive && postgres_answers; }

postgres_start() {
  postgres_up && return 0
  postgres_stop
  require_free_port "$POSTGRES_PORT" postgres
  mkdir -p "$P/run"
  chown postgres:postgres "$P" "$P/run"
  if [ ! -f "$P/data/PG_VERSION" ]; then
    rm -rf "${P:?}/data"
    # initdb refuses to run as root; its cwd must be readable by postgres.
    (cd "$P" && runuser -u postgres -- "$PG_BIN/initdb" -D "$P/data" -U postgres --auth-local=trust \
      --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync >"$P/initdb.log" 2>&1) ||
      {
        tail -n 25 "$P/initdb.log" >&2
        die "postgres: initdb failed (log: $P/initdb.log)"
      }
  fi
  touch "$P/server.log" && chown postgres:postgres "$P/server.log"
  # pg_ctl forks the postmaster; setsid keeps it out of the caller's process group.
  (cd "$P" && setsid -w runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$P/data" -l "$P/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $POSTGRES_PORT -k $P/run -c fsync=off -c shared_buffers=32MB -c max_connections=300" \
    start >"$P/pg_ctl.log" 2>&1 9>&-) || true
  wait_until postgres "$P/server.log" postgres_answers postgres_alive
  # The superuser's password for TCP (scram). Sent on stdin so it is never in a process argument.
  if [ ! -s "$P/admin-password" ]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$P/admin-password")
  fi
  chmod 600 "$P/admin-password"
  printf "ALTER ROLE postgres PASSWORD '%s';\n" "$(cat "$P/admin-password")" |
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$P/run" -p "$POSTGRES_PORT" -U postgres -d postgres >/dev/null ||
    die "postgres: could not set the postgres password (log: $P/server.log)"
}

postgres_stop() {
  if postgres_alive; then
    (cd "$P" && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$P/data" -m fast -w -t 10 stop >/dev/null 2>&1) || true
  fi
  # pg_ctl gave up, or the postmaster was killed: signal it ourselves. Keep postmaster.pid if it
  # is not ours to remove (postgres removes it on a clean stop and recovers from a stale one).
  local pid
  pid=$(pid_from "$P/data/postmaster.pid")
  if [ -n "$pid" ] && owned_pid "$pid" "$POSTGRES_MARK"; then
    stop_pidfile "$P/data/postmaster.pid" "$POSTGRES_MARK"
  fi
}

# --- OpenSSH ------------------------------------------------------------------------------------

S=$DIR/ssh
SSH_MARK="-f $S/sshd_config"
ssh_answers() { [ "$(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SSH_PORT && head -c 8 <&3" 2>/dev/null)" = SSH-2.0- ]; }
ssh_alive() { pidfile_alive "$S/sshd.pid" "$SSH_MARK"; }
ssh_up() { ssh_alive && ssh_answers; }

# A user with no password that is not locked: with UsePAM no, sshd refuses locked accounts even for keys.
ensure_user() {
  local user=$1 home=$2 shell=$3 entry
  if entry=$(getent passwd "$user"); then
    # usermod fails while the user has processes (open sessions): only call it on a change.
    [ "$(cut -d: -f6,7 <<<"$entry")" = "$home:$shell" ] || usermod -d "$home" -s "$shell" "$user"
    [ "$(getent shadow "$user" | cut -d: -f2)" = '*' ] || usermod -p '*' "$user"
  else
    useradd --no-create-home --home-dir "$home" --shell "$shell" --user-group -p '*' "$user"
  fi
}

client_key() {
  [ -f "$S/client/$1" ] || ssh-keygen -q -t ed25519 -N '' -C "$1@backproof-test" -f "$S/client/$1"
}

ssh_setup() {
  mkdir -p "$S/etc" "$S/client" "$S/home" /run/sshd
  chmod 755 "$S" "$S/home"
  chmod 700 "$S/client"
  [ -f "$S/etc/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C backproof-test-host -f "$S/etc/host_ed25519"
  client_key bpnas_ed25519
  client_key bpsftp_ed25519

  # bpnas: an ordinary account with a shell, home under the services dir (sshd's StrictModes
  # stops its walk at the home, so /tmp above it is fine).
  ensure_user "$NAS_USER" "$S/home/$NAS_USER" /bin/bash
  install -d -m 755 -o "$NAS_USER" -g "$NAS_USER" "$S/home/$NAS_USER"
  install -d -m 700 -o "$NAS_USER" -g "$NAS_USER" "$S/home/$NAS_USER/.ssh"
  install -m 600 -o "$NAS_USER" -g "$NAS_USER" "$S/client/bpnas_ed25519.pub" "$S/home/$NAS_USER/.ssh/authorized_keys"

  # bpsftp: Synology-like, SFTP only, chrooted. Every path to the chroot must be root-owned and
  # not writable by others, hence /srv. Its home /upload is relative to the chroot; its key lives
  # outside the chroot in a root-owned directory.
  ensure_user "$SFTP_USER" /upload /usr/sbin/nologin
  install -d -m 755 -o root -g root "$CHROOT" "$SFTP_KEYS"
  install -d -m 755 -o "$SFTP_USER" -g "$SFTP_USER" "$CHROOT/upload"
  install -m 644 -o root -g root "$S/client/bpsftp_ed25519.pub" "$SFTP_KEYS/$SFTP_USER"

  cat >"$S/sshd_config" <<EOF
# backproof test sshd: loopback only, key authentication only.
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $S/etc/host_ed25519
PidFile $S/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
AllowUsers $NAS_USER $SFTP_USER
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PrintMotd no
UseDNS no
# Tests open many connections at once; the default (10:30:100) drops some of them at random.
MaxStartups 200
MaxSessions 50
Subsystem sftp internal-sftp
LogLevel VERBOSE

Match User $SFTP_USER
  AuthorizedKeysFile $SFTP_KEYS/%u
  ChrootDirectory $CHROOT
  ForceCommand internal-sftp
  PermitTTY no
EOF
  # Read straight from our own host key: no ssh-keyscan, no trust on first use.
  echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$S/etc/host_ed25519.pub")" >"$S/client/known_hosts"
  chmod 644 "$S/client/known_hosts"
}

ssh_start() {
  ssh_up && return 0
  ssh_stop
  require_free_port "$SSH_PORT" ssh
  ssh_setup
  /usr/sbin/sshd -t -f "$S/sshd_config" 2>"$S/sshd-check.log" ||
    {
      cat "$S/sshd-check.log" >&2
      die "ssh: sshd rejected $S/sshd_config"
    }
  : >>"$S/sshd.log"
  # sshd daemonizes (its own session) and writes PidFile; it needs an absolute path.
  setsid -w /usr/sbin/sshd -f "$S/sshd_config" -E "$S/sshd.log" </dev/null 9>&- || die "ssh: sshd did not start (log: $S/sshd.log)"
  wait_until ssh "$S/sshd.log" ssh_answers ssh_started
}
# While sshd writes its pid file the check above may run: count "no pid file yet" as alive.
ssh_started() { [ ! -s "$S/sshd.pid" ] || ssh_alive; }

ssh_stop() { stop_pidfile "$S/sshd.pid" "$SSH_MARK"; }

# --- S3: OpenStack Swift + s3api ----------------------------------------------------------------

W=$DIR/s3
SWIFT_SERVERS=(object container account)
s3_pidfiles() {
  echo "$W/run/memcached.pid"
  for s in "${SWIFT_SERVERS[@]}" proxy; do echo "$W/run/$s.pid"; done
}
MEMCACHED_MARK="memcached -u root -l 127.0.0.1 -p $MEMCACHED_PORT"
# The config file names the swift server; its path names our services dir.
swift_mark() { echo "$W/etc/$1-server.conf"; }

s3_alive() {
  pidfile_alive "$W/run/memcached.pid" "$MEMCACHED_MARK" || return 1
  local s
  for s in "${SWIFT_SERVERS[@]}" proxy; do pidfile_alive "$W/run/$s.pid" "$W/etc/$s-server.conf" || return 1; done
}

# A real round trip: a tempauth token (memcached), then the account listing (account server).
s3_answers() {
  local headers token url
  headers=$(curl -fsS --max-time 3 -o /dev/null -D - -H 'X-Auth-User: test:tester' -H 'X-Auth-Key: testing' \
    "http://127.0.0.1:$S3_PORT/auth/v1.0" 2>/dev/null) || return 1
  token=$(tr -d '\r' <<<"$headers" | awk -F': ' 'tolower($1)=="x-auth-token" {print $2}')
  url=$(tr -d '\r' <<<"$headers" | awk -F': ' 'tolower($1)=="x-storage-url" {print $2}')
  [ -n "$token" ] && [[ $url == "http://127.0.0.1:$S3_PORT/"* ]] || return 1
  curl -fsS --max-time 3 -o /dev/null -H "X-Auth-Token: $token" "$url" 2>/dev/null
}
s3_up() { s3_alive && s3_answers; }

s3_setup() {
  mkdir -p "$W/etc" "$W/node/d1" "$W/run" "$W/log"
  # Swift reads /etc/swift/swift.conf from that fixed path; Debian ships one. Only write it if missing.
  if [ ! -f /etc/swift/swift.conf ]; then
    mkdir -p /etc/swift
    printf '[swift-hash]\nswift_hash_path_suffix = backproof-test\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n' \
      >/etc/swift/swift.conf
  fi
  # Rings in one Python process (the swift-ring-builder CLI takes ~7 s more). 1 replica, 1 device.
  if [ ! -f "$W/etc/account.ring.gz" ]; then
    "$SWIFT_PYTHON" - "$W/etc" "$SWIFT_BASE_PORT" <<'PY'
import sys
from swift.common.ring import RingBuilder
d, base = sys.argv[1], int(sys.argv[2])
for i, r in enumerate(('object', 'container', 'account')):
    b = RingBuilder(8, 1, 1)
    b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': base + i, 'device': 'd1', 'weight': 100})
    b.rebalance()
    b.get_ring().save(f'{d}/{r}.ring.gz')
PY
  fi
  local i s
  for i in 0 1 2; do
    s=${SWIFT_SERVERS[$i]}
    cat >"$W/etc/$s-server.conf" <<EOF
[DEFAULT]
devices = $W/node
mount_check = false
disable_fallocate = true
bind_ip = 127.0.0.1
bind_port = $((SWIFT_BASE_PORT + i))
workers = 0
user = root
swift_dir = $W/etc
log_name = $s-server

[pipeline:main]
pipeline = $s-server

[app:$s-server]
use = egg:swift#$s
EOF
  done
  cat >"$W/etc/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $S3_PORT
workers = 0
user = root
swift_dir = $W/etc
log_name = proxy-server

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MEMCACHED_PORT

[filter:proxy-logging]
use = egg:swift#proxy_logging
EOF
  for s in catch_errors gatekeeper healthcheck listing_formats copy slo dlo; do
    printf '\n[filter:%s]\nuse = egg:swift#%s\n' "$s" "$s" >>"$W/etc/proxy-server.conf"
  done
}

s3_start() {
  s3_up && return 0
  s3_stop
  local port
  for port in "$MEMCACHED_PORT" "$SWIFT_BASE_PORT" $((SWIFT_BASE_PORT + 1)) $((SWIFT_BASE_PORT + 2)) "$S3_PORT"; do
    require_free_port "$port" s3
  done
  s3_setup
  launch "$W/run/memcached.pid" "$W/log/memcached.log" memcached -u root -l 127.0.0.1 -p "$MEMCACHED_PORT" -U 0 -m 64
  local s
  # -v logs to stderr (there is no syslog here).
  for s in "${SWIFT_SERVERS[@]}" proxy; do
    launch "$W/run/$s.pid" "$W/log/$s.log" "/usr/bin/swift-$s-server" "$W/etc/$s-server.conf" -v
  done
  wait_until s3 "$W/log/proxy.log" s3_answers s3_alive_or_log
}
# On an early death, say which part died before wait_until prints the proxy log.
s3_alive_or_log() {
  s3_alive && return 0
  local f
  for f in memcached "${SWIFT_SERVERS[@]}"; do
    if ! pidfile_alive "$W/run/$f.pid" "$([ "$f" = memcached ] && echo "$MEMCACHED_MARK" || swift_mark "$f")"; then
      say "s3: $f exited; last lines of $W/log/$f.log:"
      tail -n 25 "$W/log/$f.log" >&2 2>/dev/null || true
    fi
  done
  return 1
}

s3_stop() {
  local s pid pids=() failed=0
  for s in proxy "${SWIFT_SERVERS[@]}"; do
    stop_pidfile "$W/run/$s.pid" "$(swift_mark "$s")" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  stop_pidfile "$W/run/memcached.pid" "$MEMCACHED_MARK"
  return "$failed"
}

# --- services.json ------------------------------------------------------------------------------

write_services_json() {
  local mariadb_version postgres_version swift_version host_key tmp
  mariadb_version=$(mariadbd --version | sed -n 's/.*Ver \([0-9][0-9.]*\).*/\1/p')
  postgres_version=$("$PG_BIN/postgres" --version | awk '{print $3}')
  swift_version=$(dpkg-query -W -f='${Version}' python3-swift 2>/dev/null | sed 's/-.*//' || true)
  host_key=$(cut -d' ' -f1,2 "$S/etc/host_ed25519.pub" 2>/dev/null || true)
  tmp=$DIR/services.json.tmp
  cat >"$tmp" <<EOF
{
  "dir": "$DIR",
  "script": "$(realpath "$0")",
  "mariadb": {
    "host": "127.0.0.1",
    "port": $MARIADB_PORT,
    "socket": "$M/run/mysqld.sock",
    "adminUser": "root",
    "version": "$mariadb_version",
    "pidFile": "$M/run/mysqld.pid",
    "log": "$M/error.log"
  },
  "postgres": {
    "host": "127.0.0.1",
    "port": $POSTGRES_PORT,
    "socketDir": "$P/run",
    "adminUser": "postgres",
    "adminPasswordFile": "$P/admin-password",
    "version": "$postgres_version",
    "pidFile": "$P/data/postmaster.pid",
    "log": "$P/server.log"
  },
  "ssh": {
    "host": "127.0.0.1",
    "port": $SSH_PORT,
    "knownHosts": "$S/client/known_hosts",
    "hostPublicKey": "$host_key",
    "user": "$NAS_USER",
    "identityFile": "$S/client/bpnas_ed25519",
    "home": "$S/home/$NAS_USER",
    "sftpOnly": {
      "user": "$SFTP_USER",
      "identityFile": "$S/client/bpsftp_ed25519",
      "path": "/upload",
      "localPath": "$CHROOT/upload"
    },
    "sshdPidFile": "$S/sshd.pid",
    "log": "$S/sshd.log"
  },
  "s3": {
    "endpoint": "http://127.0.0.1:$S3_PORT",
    "region": "us-east-1",
    "accessKeyId": "test:tester",
    "secretAccessKey": "testing",
    "forcePathStyle": true,
    "server": "swift",
    "version": "$swift_version",
    "pidFiles": [$(s3_pidfiles | sed 's/.*/"&"/' | paste -sd, | sed 's/,/, /g')],
    "log": "$W/log/proxy.log"
  }
}
EOF
  mv "$tmp" "$DIR/services.json"
}

# --- commands -----------------------------------------------------------------------------------

known_service() {
  local s
  for s in "${ALL_SERVICES[@]}"; do [ "$s" = "$1" ] && return 0; done
  die "unknown service '$1' (known: ${ALL_SERVICES[*]})"
}

# Starts the named services in parallel (Swift's Python imports dominate; the rest overlaps).
start_services() {
  local s failed=() pids=() i=0 t0=$SECONDS
  for s in "$@"; do known_service "$s"; done
  for s in "$@"; do
    ("${s}_start") &
    pids+=($!)
  done
  for s in "$@"; do
    wait "${pids[$i]}" || failed+=("$s")
    i=$((i + 1))
  done
  write_services_json
  if [ ${#failed[@]} -gt 0 ]; then die "could not start: ${failed[*]} (see above)"; fi
  say "up: $* ($((SECONDS - t0)) s; $DIR/services.json)"
}

stop_services() {
  local s failed=() pids=() i=0
  for s in "$@"; do known_service "$s"; done
  for s in "$@"; do
    ("${s}_stop") &
    pids+=($!)
  done
  for s in "$@"; do
    wait "${pids[$i]}" || failed+=("$s")
    i=$((i + 1))
  done
  if [ ${#failed[@]} -gt 0 ]; then die "could not stop: ${failed[*]} (see above)"; fi
  say "stopped: $*"
}

status() {
  local s down=0
  for s in "${ALL_SERVICES[@]}"; do
    if "${s}_up"; then echo "$s: up"; else
      echo "$s: down"
      down=1
    fi
  done
  return $((down * 3))
}

# $DIR/auto-stop lists the services that `acquire` started; the last `release` stops exactly those.
auto_stop_add() {
  { cat "$DIR/auto-stop" 2>/dev/null || true; printf '%s\n' "$@"; } | sort -u >"$DIR/auto-stop.tmp"
  mv "$DIR/auto-stop.tmp" "$DIR/auto-stop"
}
auto_stop_remove() {
  [ -f "$DIR/auto-stop" ] || return 0
  grep -vxF -f <(printf '%s\n' "$@") "$DIR/auto-stop" >"$DIR/auto-stop.tmp" || true
  mv "$DIR/auto-stop.tmp" "$DIR/auto-stop"
}

live_leases() {
  local f id n=0
  for f in "$DIR"/leases/*; do
    [ -e "$f" ] || continue
    id=$(basename "$f")
    if [[ $id =~ ^[0-9]+$ ]] && kill -0 "$id" 2>/dev/null; then n=$((n + 1)); else rm -f "$f"; fi
  done
  echo "$n"
}

[[ $DIR == /* && $DIR =~ ^[A-Za-z0-9._/-]+$ ]] ||
  die "BACKPROOF_SERVICES_DIR must be an absolute path of letters, digits, '.', '_', '-' and '/' (got '$DIR')"
command=${1:-}
shift || true
if [ "$command" = status ]; then
  status
  exit $?
fi
[ "$(id -u)" = 0 ] || die "needs root (it creates users, a chroot under /srv and runs servers as postgres)"
mkdir -p "$DIR"
chmod 755 "$DIR" # postgres and bpnas must be able to enter it
# One command at a time per services dir: parallel test runs may start and release together.
exec 9>"$DIR/.lock"
flock -w 300 9 || die "another test-services.sh holds $DIR/.lock for more than 300 s"

if [ $# -eq 0 ] && [[ $command == start || $command == stop ]]; then set -- "${ALL_SERVICES[@]}"; fi
case "$command" in
start)
  auto_stop_remove "$@" # started by hand: stays up until `stop`
  start_services "$@"
  ;;
stop)
  stop_services "$@"
  auto_stop_remove "$@"
  ;;
restart)
  [ $# -gt 0 ] || die "usage: $0 restart mariadb|postgres|ssh|s3 ..."
  stop_services "$@"
  start_services "$@"
  ;;
acquire)
  [[ ${1:-} =~ ^[0-9]+$ ]] || die "usage: $0 acquire PID (the test run's pid)"
  mkdir -p "$DIR/leases"
  : >"$DIR/leases/$1"
  down=()
  for s in "${ALL_SERVICES[@]}"; do "${s}_up" || down+=("$s"); done
  if [ ${#down[@]} -gt 0 ]; then
    auto_stop_add "${down[@]}"
    start_services "${down[@]}"
  else
    write_services_json
  fi
  ;;
release)
  [[ ${1:-} =~ ^[0-9]+$ ]] || die "usage: $0 release PID"
  rm -f "$DIR/leases/$1"
  if [ -s "$DIR/auto-stop" ] && [ "$(live_leases)" = 0 ]; then
    mapfile -t started <"$DIR/auto-stop"
    stop_services "${started[@]}"
    rm -f "$DIR/auto-stop"
  fi
  ;;
clean)
  stop_services "${ALL_SERVICES[@]}"
  for u in "$NAS_USER" "$SFTP_USER"; do ! id "$u" >/dev/null 2>&1 || userdel "$u" 2>/dev/null || true; done
  rm -rf "$CHROOT" "$SFTP_KEYS"
  exec 9>&-
  rm -rf "$DIR"
  say "removed $DIR, $CHROOT, $SFTP_KEYS and the users $NAS_USER, $SFTP_USER"
  ;;
*)
  die "usage: $0 start|stop [NAME...] | restart NAME... | status | acquire PID | release PID | clean   (NAME: ${ALL_SERVICES[*]})"
  ;;
esac
