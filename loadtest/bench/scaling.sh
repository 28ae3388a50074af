#!/usr/bin/env bash
# What must stay flat as gateways are added, on one machine (adding gateways
# here adds no cores): gateway CPU and Redis CPU per delivery, with 1, 2 and
# 4 gateways, on a single Redis and on a Redis Cluster (3 masters with a
# replica each), for one busy canvas and for 1,000 small ones. The two
# Redis setups alternate at every gateway count. Each run measures the
# floor (one write per member without Easel) just before it (`--floor`)
# and states the gateways' CPU per delivery as a ratio to it. About 12
# minutes.
#
#   loadtest/bench/scaling.sh [OUT]   (JSON reports in OUT, default target/bench/scaling)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-target/bench/scaling}
mkdir -p "$out"
cargo build --release -q -p gateway -p loadtest
declare -A shapes=(
  [busy]="--members 1000 --rate 50 --duration-secs 15"
  [many]="--canvases 1000 --members 10 --publishers 1000 --rate 1000 --duration-secs 15"
)
printf '%-5s %-8s %3s %12s %8s %8s %14s %14s %10s %6s %s\n' shape redis gw deliveries/s p50_ms p99_ms gw_cpu_us/dl redis_cpu_us/dl floor_us/wr ratio verdict
for shape in busy many; do
  for gateways in 1 2 4; do
    for redis in single cluster; do
      file="$out/$shape-$redis-$gateways.json"
      # shellcheck disable=SC2086
      BENCH_REDIS=$redis loadtest/bench/cluster.sh "$gateways" fanout ${shapes[$shape]} --floor --json >"$file" || true
      python3 - "$file" "$shape" "$redis" "$gateways" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
lat = r.get("latency") or {}
c = r["correctness"]
floor = r.get("floor_cpu_us_per_write") or 0
cpu = r.get("cpu_us_per_delivery") or 0
clean = c["lost"] == 0 and c["duplicated"] == 0 and c["out_of_order"] == 0 and r["connections_failed"] == 0
print(f'{sys.argv[2]:5} {sys.argv[3]:8} {sys.argv[4]:>3} {r["deliveries_per_sec"]:12.0f} '
      f'{lat.get("p50_ms", 0):8.2f} {lat.get("p99_ms", 0):8.2f} '
      f'{cpu:14.2f} {r.get("redis_cpu_us_per_delivery") or 0:14.2f} '
      f'{floor:10.2f} {(cpu / floor if floor else 0):5.2f}x '
      f'{"clean" if clean else "NOT CLEAN"}')
PY
    done
  done
done
