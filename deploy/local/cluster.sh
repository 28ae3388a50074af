#!/usr/bin/env bash
# Easel on one machine, without Docker: a private Redis (AOF on) and
# PostgreSQL from the system's binaries, two gateways, one persister, nginx
# in front as the load balancer, and optionally Prometheus scraping them all
# with the alert rules loaded. Everything lives in one state directory.
#
#   deploy/local/cluster.sh up [--prometheus]   start what is not running (idempotent)
#   deploy/local/cluster.sh status              what runs, and whether it is ready
#   deploy/local/cluster.sh down [--purge]      stop everything; --purge also deletes the data
#
# Settings (environment):
#   EASEL_LOCAL_DIR      state directory (default: .local-cluster in the repository)
#   EASEL_LOCAL_PORT     the load balancer's port (default 8080)
#   EASEL_LOCAL_BASE     base of the internal ports (default 18000; see below)
#   EASEL_LOCAL_PROFILE  cargo profile to build and run: release (default) or dev
set -euo pipefail
# nginx and Prometheus live in /usr/sbin, which a non-root PATH lacks.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

root=$(cd "$(dirname "$0")/../.." && pwd)
state=${EASEL_LOCAL_DIR:-$root/.local-cluster}
profile=${EASEL_LOCAL_PROFILE:-release}
lb_port=${EASEL_LOCAL_PORT:-8080}
base=${EASEL_LOCAL_BASE:-18000}
redis_port=$((base + 379))
pg_port=$((base + 432))
gw_ports=($((base + 81)) $((base + 82)))
gw_admin=($((base + 91)) $((base + 92)))
persister_admin=$((base + 95))
prom_port=$((base + 90))
case "$profile" in
  release) bin=$root/target/release ;;
  dev) bin=$root/target/debug ;;
  *) echo "cluster: EASEL_LOCAL_PROFILE must be release or dev, not '$profile'" >&2; exit 2 ;;
esac

die() { echo "cluster: $*" >&2; exit 1; }
say() { echo "cluster: $*"; }

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  if [[ -n "$d" && -x "$d/initdb" ]]; then echo "$d"; return; fi
  command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)" && return
  return 1
}

need() { # command, Debian package
  command -v "$1" >/dev/null 2>&1 || die "$1 not found; install it (Debian: apt-get install $2)"
}

# Whether the process in pid file $1 is alive.
alive() { [[ -s "$1" ]] && kill -0 "$(head -n1 "$1")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Fails clearly when a port we are about to use is taken by something else.
claim_port() { # port, what
  if port_open "$1"; then
    die "port $1 (for $2) is already in use by another process; stop it, or set EASEL_LOCAL_BASE / EASEL_LOCAL_PORT"
  fi
}

wait_for() { # what, seconds, command...
  local what=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "$what did not come up within ${secs}s; see $state/logs/"
    fi
    sleep 0.2
  done
}

ready() { curl -fsS --max-time 2 "http://127.0.0.1:$1/readyz"; }

# The load balancer answers with a gateway's reply (the canvas list wants a
# token, so 401 is a gateway speaking).
lb_answers() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$lb_port/api/canvases")
  [[ "$code" == 401 || "$code" == 200 ]]
}

# Runs a binary in the background with its own log and pid file.
spawn() { # name, command...
  local name=$1
  shift
  setsid "$@" >>"$state/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$state/run/$name.pid"
}

as_postgres() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_redis() {
  if alive "$state/run/redis.pid"; then return; fi
  claim_port "$redis_port" redis
  mkdir -p "$state/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$state/redis" \
    --appendonly yes --appendfsync everysec --save "" \
    --daemonize yes --pidfile "$state/run/redis.pid" --logfile "$state/logs/redis.log"
  wait_for redis 10 redis-cli -p "$redis_port" ping
  say "redis on 127.0.0.1:$redis_port (AOF in $state/redis)"
}

start_postgres() {
  local pgb data=$state/postgres
  pgb=$(pg_bin) || die "PostgreSQL server binaries (initdb, pg_ctl) not found; install them (Debian: apt-get install postgresql)"
  if [[ -s "$data/postmaster.pid" ]] && as_postgres "$pgb/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    return
  fi
  claim_port "$pg_port" postgres
  if [[ ! -s "$data/PG_VERSION" ]]; then
    mkdir -p "$data"
    if [[ $(id -u) == 0 ]]; then
      # The server runs as postgres, which must reach its directory.
      chmod o+x "$state"
      chown postgres:postgres "$data"
      runuser -u postgres -- test -w "$data" ||
        die "the postgres user cannot write $data (a parent directory is not traversable); set EASEL_LOCAL_DIR, e.g. under /tmp"
    fi
    chmod 700 "$data"
    as_postgres "$pgb/initdb" -D "$data" -U postgres -A trust --no-sync >"$state/logs/initdb.log" 2>&1 ||
      die "initdb failed; see $state/logs/initdb.log"
  fi
  touch "$state/logs/postgres.log"
  [[ $(id -u) == 0 ]] && chown postgres:postgres "$state/logs/postgres.log"
  as_postgres "$pgb/pg_ctl" -D "$data" -l "$state/logs/postgres.log" -w -t 30 \
    -o "-p $pg_port -k $data -c listen_addresses=127.0.0.1" start >/dev/null ||
    die "postgres did not start; see $state/logs/postgres.log"
  local exists
  exists=$(psql -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'easel'")
  if [[ "$exists" != 1 ]]; then
    psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE easel" >/dev/null
  fi
  say "postgres on 127.0.0.1:$pg_port (data in $data)"
}

common_env() {
  echo EASEL_REDIS_URL="redis://127.0.0.1:$redis_port"
  echo EASEL_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/easel"
  echo EASEL_JWT_SECRET="$(cat "$state/jwt-secret")"
}

start_gateway() { # index 1 or 2
  local i=$1 port=${gw_ports[$(($1 - 1))]} admin=${gw_admin[$(($1 - 1))]}
  if alive "$state/run/gateway-$i.pid"; then return; fi
  claim_port "$port" "gateway $i"
  claim_port "$admin" "gateway $i admin"
  # The demo (clients/demo), when built: served through nginx at /.
  local demo=()
  [[ -f "$root/clients/demo/dist/index.html" ]] && demo=(EASEL_STATIC_DIR="$root/clients/demo/dist")
  # shellcheck disable=SC2046
  spawn "gateway-$i" env $(common_env) "${demo[@]}" \
    EASEL_NODE_ID="gw-$i" \
    EASEL_LISTEN="127.0.0.1:$port" \
    EASEL_ADMIN_LISTEN="127.0.0.1:$admin" \
    EASEL_ALLOWED_ORIGINS='*' \
    EASEL_AUTO_CREATE_CANVASES=true \
    EASEL_TRUSTED_PROXIES=127.0.0.1 \
    EASEL_BACKLOG_LIMIT=100000 \
    EASEL_DRAIN_DELAY_MS=2000 \
    EASEL_DRAIN_WINDOW_MS=5000 \
    EASEL_SHUTDOWN_GRACE_SECS=10 \
    "$bin/gateway"
  wait_for "gateway $i" 30 ready "$admin"
  say "gateway $i on 127.0.0.1:$port (admin 127.0.0.1:$admin)"
}

start_persister() {
  if alive "$state/run/persister.pid"; then return; fi
  claim_port "$persister_admin" "persister admin"
  # shellcheck disable=SC2046
  spawn persister env $(common_env) \
    EASEL_CONSUMER=persister-1 \
    EASEL_ADMIN_LISTEN="127.0.0.1:$persister_admin" \
    "$bin/persister"
  wait_for persister 30 ready "$persister_admin"
  say "persister (admin 127.0.0.1:$persister_admin)"
}

start_nginx() {
  local dir=$state/nginx
  if alive "$dir/nginx.pid"; then return; fi
  claim_port "$lb_port" "the load balancer"
  mkdir -p "$dir/tmp"
  # Workers run as an unprivileged user when nginx starts as root.
  chmod 1777 "$dir/tmp"
  sed -e "s|@PREFIX@|$dir|g" -e "s|@PORT@|$lb_port|g" -e "s|@LOGS@|$state/logs|g" \
    -e "s|@GW1@|127.0.0.1:${gw_ports[0]}|g" -e "s|@GW2@|127.0.0.1:${gw_ports[1]}|g" \
    "$root/deploy/local/nginx.conf.in" >"$dir/nginx.conf"
  nginx -t -q -p "$dir" -c "$dir/nginx.conf" 2>>"$state/logs/nginx.log" ||
    die "nginx rejected its configuration; see $state/logs/nginx.log"
  nginx -p "$dir" -c "$dir/nginx.conf" 2>>"$state/logs/nginx.log"
  wait_for nginx 10 lb_answers
  say "nginx on 127.0.0.1:$lb_port -> gateways ${gw_ports[*]}"
}

start_prometheus() {
  local dir=$state/prometheus
  if alive "$state/run/prometheus.pid"; then return; fi
  claim_port "$prom_port" prometheus
  mkdir -p "$dir/data"
  cp "$root/deploy/prometheus/alerts.yml" "$dir/alerts.yml"
  cat >"$dir/prometheus.yml" <<EOF
# Written by deploy/local/cluster.sh.
global:
  scrape_interval: 5s
  evaluation_interval: 15s
rule_files:
  - alerts.yml
scrape_configs:
  - job_name: easel-gateway
    static_configs:
      - targets: ["127.0.0.1:${gw_admin[0]}", "127.0.0.1:${gw_admin[1]}"]
  - job_name: easel-persister
    static_configs:
      - targets: ["127.0.0.1:$persister_admin"]
EOF
  spawn prometheus prometheus --config.file="$dir/prometheus.yml" \
    --storage.tsdb.path="$dir/data" --web.listen-address="127.0.0.1:$prom_port" \
    --web.enable-lifecycle
  wait_for prometheus 30 curl -fsS --max-time 2 "http://127.0.0.1:$prom_port/-/ready"
  say "prometheus on http://127.0.0.1:$prom_port (alerts: deploy/prometheus/alerts.yml)"
}

up() {
  local with_prometheus=$1
  need redis-server redis-server
  need redis-cli redis-tools
  need psql postgresql-client
  need nginx nginx-light
  need curl curl
  pg_bin >/dev/null || die "PostgreSQL server binaries (initdb, pg_ctl) not found; install them (Debian: apt-get install postgresql)"
  ((with_prometheus)) && need prometheus prometheus
  mkdir -p "$state/run" "$state/logs"
  if [[ ! -s "$state/jwt-secret" ]]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$state/jwt-secret"
    chmod 600 "$state/jwt-secret"
  fi
  say "building gateway and persister ($profile)"
  (cd "$root" && cargo build -q --profile "$profile" -p gateway -p persister) || die "cargo build failed"
  start_redis
  start_postgres
  start_persister
  start_gateway 1
  start_gateway 2
  start_nginx
  ((with_prometheus)) && start_prometheus
  local token
  token=$(EASEL_JWT_SECRET=$(cat "$state/jwt-secret") "$bin/gateway" token --sub you --name You --admin)
  cat <<EOF

Easel is running ($state):
  WebSocket   ws://127.0.0.1:$lb_port/ws?token=$token
  REST        http://127.0.0.1:$lb_port/api/canvases
EOF
  if [[ -f "$root/clients/demo/dist/index.html" ]]; then
    echo "  demo        http://127.0.0.1:$lb_port/?user=you&token=$token"
  else
    echo "  demo        build it (cd clients/js && npm ci && npm run demo), then restart the cluster"
  fi
  cat <<EOF
  metrics     http://127.0.0.1:${gw_admin[0]}/metrics  http://127.0.0.1:${gw_admin[1]}/metrics  http://127.0.0.1:$persister_admin/metrics
EOF
  ((with_prometheus)) && echo "  prometheus  http://127.0.0.1:$prom_port"
  cat <<EOF
  JWT secret  $state/jwt-secret (mint tokens: EASEL_JWT_SECRET=\$(cat $state/jwt-secret) $bin/gateway token --sub NAME)
Stop it with: deploy/local/cluster.sh down
EOF
}

# Sends SIGTERM and waits up to $2 seconds before SIGKILL.
stop_pid() { # pid file, seconds, name
  local f=$1 secs=$2 name=$3
  alive "$f" || { rm -f "$f"; return 0; }
  local pid
  pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + secs))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      echo "cluster: $name did not stop within ${secs}s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$f"
  say "stopped $name"
}

down() {
  local purge=$1
  [[ -d "$state" ]] || { say "nothing to stop ($state does not exist)"; return 0; }
  stop_pid "$state/nginx/nginx.pid" 10 nginx
  # Both gateways drain at once (unready, then closes spread over the window).
  stop_pid "$state/run/gateway-1.pid" 15 "gateway 1" &
  stop_pid "$state/run/gateway-2.pid" 15 "gateway 2" &
  wait
  stop_pid "$state/run/persister.pid" 15 persister
  stop_pid "$state/run/prometheus.pid" 15 prometheus
  local pgb
  if pgb=$(pg_bin) && [[ -s "$state/postgres/postmaster.pid" ]]; then
    as_postgres "$pgb/pg_ctl" -D "$state/postgres" -m fast -w stop >/dev/null 2>&1 || true
    say "stopped postgres"
  fi
  stop_pid "$state/run/redis.pid" 10 redis
  if ((purge)); then
    rm -rf "$state"
    say "deleted $state"
  fi
}

status() {
  local bad=0
  check() { # name, pid file, readiness command...
    local name=$1 f=$2
    shift 2
    if ! alive "$f"; then
      printf '  %-12s stopped\n' "$name"
      bad=1
    elif "$@" >/dev/null 2>&1; then
      printf "  %-12s ready (pid %s)\n" "$name" "$(head -n1 "$f")"
    else
      printf "  %-12s running, NOT ready (pid %s)\n" "$name" "$(head -n1 "$f")"
      bad=1
    fi
  }
  check redis "$state/run/redis.pid" redis-cli -p "$redis_port" ping
  check postgres "$state/postgres/postmaster.pid" psql -h 127.0.0.1 -p "$pg_port" -U postgres -c 'SELECT 1'
  check persister "$state/run/persister.pid" ready "$persister_admin"
  check gateway-1 "$state/run/gateway-1.pid" ready "${gw_admin[0]}"
  check gateway-2 "$state/run/gateway-2.pid" ready "${gw_admin[1]}"
  check nginx "$state/nginx/nginx.pid" lb_answers
  if [[ -s "$state/run/prometheus.pid" ]]; then
    check prometheus "$state/run/prometheus.pid" curl -fsS --max-time 2 "http://127.0.0.1:$prom_port/-/ready"
  fi
  return $bad
}

cmd=${1:-}
shift || true
case "$cmd" in
  up)
    prom=0
    for a in "$@"; do
      case "$a" in
        --prometheus) prom=1 ;;
        *) die "unknown option for up: $a (expected --prometheus)" ;;
      esac
    done
    up "$prom"
    ;;
  down)
    purge=0
    for a in "$@"; do
      case "$a" in
        --purge) purge=1 ;;
        *) die "unknown option for down: $a (expected --purge)" ;;
      esac
    done
    down "$purge"
    ;;
  status) status ;;
  *)
    echo "usage: $0 up [--prometheus] | status | down [--purge]" >&2
    exit 2
    ;;
esac
