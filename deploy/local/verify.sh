#!/usr/bin/env bash
# Checks the operations stack end to end on this machine: starts a private
# local cluster with Prometheus (deploy/local/cluster.sh), puts load on it
# through nginx (durable draws with members resuming, and cursors), then
# checks that every Grafana panel query returns data, every scrape target
# is up and every alert rule evaluates (deploy/grafana/check_dashboards.py).
# Everything is stopped and deleted on exit.
#
#   deploy/local/verify.sh        (make verify-cluster; part of make test)
#
# Uses its own state directory and ports (EASEL_LOCAL_BASE, default 28000;
# load balancer EASEL_LOCAL_PORT, default 28080), so a running local cluster
# is left alone. EASEL_LOCAL_PROFILE defaults to dev here: the load is light.
set -euo pipefail
# nginx and Prometheus live in /usr/sbin, which a non-root PATH lacks.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export EASEL_LOCAL_DIR=${EASEL_VERIFY_DIR:-$(mktemp -d /tmp/easel-verify.XXXXXX)}
export EASEL_LOCAL_BASE=${EASEL_LOCAL_BASE:-28000}
export EASEL_LOCAL_PORT=${EASEL_LOCAL_PORT:-28080}
export EASEL_LOCAL_PROFILE=${EASEL_LOCAL_PROFILE:-dev}
prom="http://127.0.0.1:$((EASEL_LOCAL_BASE + 90))"
url="ws://127.0.0.1:$EASEL_LOCAL_PORT/ws"
loads=()

cleanup() {
  local status=$?
  for p in "${loads[@]}"; do kill "$p" 2>/dev/null || true; done
  if ((status != 0)); then
    echo "verify: FAILED; the last lines of each log:" >&2
    for f in "$EASEL_LOCAL_DIR"/logs/*.log; do
      [[ -f "$f" ]] && { echo "--- $f" >&2; tail -n 5 "$f" >&2; }
    done
  fi
  deploy/local/cluster.sh down --purge >/dev/null || true
  exit "$status"
}
trap cleanup EXIT

deploy/local/cluster.sh up --prometheus
case "$EASEL_LOCAL_PROFILE" in
  release) bin=target/release ;;
  *) bin=target/debug ;;
esac
cargo build -q --profile "$EASEL_LOCAL_PROFILE" -p loadtest
secret=$(cat "$EASEL_LOCAL_DIR/jwt-secret")

# Durable draws to members who drop and resume (through nginx, so on
# either gateway), and cursors: every panel has something to show.
EASEL_JWT_SECRET=$secret "$bin/loadtest" resume --url "$url" --canvases 2 --members 10 \
  --publishers 2 --rate 40 --duration-secs 90 --resume-rate 1 --canvas-prefix verify-durable \
  >"$EASEL_LOCAL_DIR/logs/load-resume.txt" 2>&1 &
loads+=($!)
EASEL_JWT_SECRET=$secret "$bin/loadtest" fanout --url "$url" --canvases 1 --members 10 \
  --publishers 2 --rate 40 --kind cursor --duration-secs 90 --canvas-prefix verify-cursor \
  >"$EASEL_LOCAL_DIR/logs/load-cursor.txt" 2>&1 &
loads+=($!)

# Poll until every query has data (rates need two scrapes inside their
# window, quantiles some observations), or give up after 75 s.
deadline=$((SECONDS + 75))
until python3 deploy/grafana/check_dashboards.py "$prom" >"$EASEL_LOCAL_DIR/logs/check.txt" 2>&1; do
  if ((SECONDS >= deadline)); then
    cat "$EASEL_LOCAL_DIR/logs/check.txt" >&2
    exit 1
  fi
  sleep 3
done
cat "$EASEL_LOCAL_DIR/logs/check.txt"
for p in "${loads[@]}"; do
  kill -INT "$p" 2>/dev/null || true
done
echo "verify: every dashboard query returned data under load; targets up; rules healthy"
