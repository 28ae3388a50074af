#!/usr/bin/env bash
# Where a gateway's CPU per delivery goes, next to the floor's:
# `perf record` on one of two gateways during a 1,000-member fan-out
# (100 draws/s, 30 s; the middle 15 s recorded), then on the floor
# (`loadtest floor --members 1000`), each grouped by
# loadtest/bench/perf-groups.py (kernel samples by system call, user-space
# samples by module). Needs `perf` (Debian: linux-perf). Software clock
# sampling (-F 999), as this VM has no hardware counters; perf's own cost
# raises both CPU figures by about a fifth, so compare the shares and the
# two runs' ratio, not the absolute figures with unprofiled runs.
#
#   loadtest/bench/profile.sh            # or: make bench-profile
#   KEEP=DIR loadtest/bench/profile.sh   # keep perf.data files and reports in DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v perf >/dev/null || { echo "profile.sh needs perf (apt-get install linux-perf)" >&2; exit 1; }
cargo build --release -q -p gateway -p loadtest
out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$out"' EXIT
before=$(pgrep -f target/release/gateway || true)
loadtest/bench/cluster.sh 2 fanout --members 1000 --rate 100 --duration-secs 30 >"$out/fanout.txt" 2>&1 &
run=$!
gateway=""
for _ in $(seq 600); do
  gateway=$(pgrep -f target/release/gateway | grep -vxF "${before:-none}" | head -1 || true)
  [ -n "$gateway" ] && break
  sleep 0.1
done
[ -n "$gateway" ] || { echo "no gateway started" >&2; exit 1; }
# The ramp (1,000 connections and joins) takes a few seconds; record the steady part.
sleep 12
perf record -q -F 999 -g -p "$gateway" -o "$out/gateway.data" -- sleep 15 2>/dev/null
wait "$run"
perf record -q -F 999 -g -o "$out/floor.data" -- \
  target/release/loadtest floor --members 1000 --rounds 1000 >"$out/floor.txt" 2>/dev/null
for name in gateway floor; do
  perf script -i "$out/$name.data" -F ip,sym,dso 2>/dev/null |
    python3 loadtest/bench/perf-groups.py >"$out/$name-groups.txt"
done
echo "== fan-out (one gateway profiled)"
grep -E "deliveries|latency p50|gateway CPU / delivery|frames / socket|verdict" "$out/fanout.txt"
echo "== its samples"
cat "$out/gateway-groups.txt"
echo "== floor (writer threads and the reader thread)"
cat "$out/floor.txt"
cat "$out/floor-groups.txt"
