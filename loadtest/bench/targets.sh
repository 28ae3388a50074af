#!/usr/bin/env bash
# Runs the benchmark targets of docs/BENCHMARKS.md one after another, each
# against a fresh private cluster (loadtest/bench/cluster.sh), and writes
# every report as JSON plus the latency plots into OUT (default
# target/bench). Every delivery scenario measures the floor (`loadtest
# floor`, one write per member without Easel) just before it runs
# (`--floor`) and states the gateways' CPU per delivery as a ratio to it.
# Takes about eight minutes; run it on an otherwise idle machine.
#
#   loadtest/bench/targets.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-target/bench}
mkdir -p "$out"
run() {
  local name=$1
  shift
  echo "== $name: $*" >&2
  loadtest/bench/cluster.sh "$@" --json >"$out/$name.json" || echo "!! $name was not clean (see $out/$name.json)" >&2
  python3 - "$out/$name.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
lat = r.get("latency") or {}
ack = r.get("ack_latency") or {}
c = r["correctness"]
print(f'{r["scenario"]:8} conns {r["connections_opened"]}/{r["connections_failed"]} '
      f'deliveries {r["deliveries"]}/{r["expected_deliveries"]} ({r["deliveries_per_sec"]:.0f}/s) '
      f'p50 {lat.get("p50_ms", 0):.2f} p99 {lat.get("p99_ms", 0):.2f} max {lat.get("max_ms", 0):.2f} ms; '
      f'acked {r["acked_per_sec"]:.0f}/s ack p99 {ack.get("p99_ms", 0):.2f} ms; '
      f'lost/dup/ooo {c["lost"]}/{c["duplicated"]}/{c["out_of_order"]}; '
      f'cpu/delivery {r.get("cpu_us_per_delivery") or 0:.2f} us '
      f'(user {r.get("user_cpu_us_per_delivery") or 0:.2f}, system {r.get("system_cpu_us_per_delivery") or 0:.2f})'
      + (f'; floor {floor:.2f} us/write, ratio {(r.get("cpu_us_per_delivery") or 0) / floor:.2f}x'
         if (floor := r.get("floor_cpu_us_per_write")) else ''))
PY
}
run fanout-1000 2 fanout --members 1000 --rate 100 --duration-secs 30 --floor --plot "$out/fanout-1000.svg"
run fanout-1000-msgpack 2 fanout --members 1000 --rate 100 --duration-secs 30 --msgpack --floor
run fanout-10000 2 fanout --members 10000 --rate 1 --duration-secs 30 --connect-rate 5000 --floor --plot "$out/fanout-10000.svg"
run durable 2 durable --members 0 --publishers 8 --window 16 --duration-secs 20
run resume 2 resume --members 500 --rate 100 --resume-rate 20 --duration-secs 20 --floor
run churn 2 churn --members 500 --rate 100 --churn-rate 500 --duration-secs 20 --floor
