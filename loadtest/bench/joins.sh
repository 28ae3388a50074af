#!/usr/bin/env bash
# Joins as a canvas grows: GATEWAYS gateways (default 1) on a private Redis;
# for each SIZE, SIZE connections, each authenticating and joining one fresh
# canvas, so the canvas grows from 0 to SIZE members during the run.
# Reports the ramp, join p50/p99, and Redis's and the gateways' CPU per join
# (user + system time over the ramp, until every connection is in). With
# presence in constant time Redis's CPU per join stays flat as SIZE grows;
# with a scan of the canvas it grows with SIZE. The last canvas of each
# size is held 10 s once in, with no joins, to measure a held member's
# upkeep per second (presence and online refreshes, pings), which a long
# ramp also pays; the report gives the CPU per join with and without it.
# Sizes under 10,000 are repeated on fresh canvases (up to 10,000 joins, at
# most 20 canvases).
#
# With GATEWAYS=N the SIZE connections are split evenly over N gateways,
# each driven by its own load tester at RATE/N, all at once and on the same
# canvas: one process holds at most ~19,000 sockets here (open files hard
# limit 20,000), so 100,000 members take GATEWAYS=6. Each tester has its own
# users, so every member is a distinct user on one gateway.
#
#   [GATEWAYS=N] loadtest/bench/joins.sh [RATE] [GATEWAY_BINARY] [SIZES...]
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-2000}
GATEWAY=${2:-./target/release/gateway}
shift $(( $# > 2 ? 2 : $# ))
SIZES=${*:-1000 4000 10000}
N=${GATEWAYS:-1}
export EASEL_JWT_SECRET=bench-secret-0123456789abcdef0123456789
PORT=18291 ADMIN=19291 REDIS=16491
cargo build -q --release -p loadtest
if [ "$GATEWAY" = ./target/release/gateway ]; then cargo build -q --release -p gateway; fi
dir=$(mktemp -d)
GWS=()
cleanup() {
  for gw in "${GWS[@]}"; do kill "$gw" 2>/dev/null || true; done
  for gw in "${GWS[@]}"; do wait "$gw" 2>/dev/null || true; done
  redis-cli -p $REDIS shutdown nosave >/dev/null 2>&1 || true
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp "$dir"/*.log "$dir"/*.json "$KEEP_LOGS"/ 2>/dev/null; fi
  rm -rf "$dir"
}
trap cleanup EXIT
redis-server --port $REDIS --save '' --appendonly no --dir "$dir" --daemonize yes \
  --pidfile "$dir/redis.pid" >/dev/null
until [ -s "$dir/redis.pid" ]; do sleep 0.05; done
for i in $(seq 0 $((N - 1))); do
  "$GATEWAY" --listen 127.0.0.1:$((PORT + i)) --admin-listen 127.0.0.1:$((ADMIN + i)) --node-id "joins-$i" \
    --redis-url redis://127.0.0.1:$REDIS --ip-connect-rate off --max-connections 100000 \
    --presence-events-max 0 2>"$dir/gateway-$i.log" &
  GWS+=($!)
done
for i in $(seq 0 $((N - 1))); do
  until curl -sf http://127.0.0.1:$((ADMIN + i))/readyz >/dev/null; do sleep 0.1; done
done
# User + system CPU seconds of the given processes together.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{t += $14 + $15} END {print t / hz}' $(printf '/proc/%s/stat ' "$@"); }
gateways_cpu() { cpu "${GWS[@]}"; }
# Connections still open on all gateways (0 once every leave is done).
open_now() {
  local t=0 n
  for i in $(seq 0 $((N - 1))); do
    n=$(curl -sf http://127.0.0.1:$((ADMIN + i))/metrics | awk '$1 == "easel_gateway_connections_open" {print $2}')
    t=$((t + ${n:-0}))
  done
  echo "$t"
}
RPID=$(cat "$dir/redis.pid")
now() { date +%s.%N; }
add() { awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN {print a + b - c}'; }
# The last canvas of a size is held UPKEEP seconds once all are in, with
# no joins: what a held member costs per second (presence and online
# refreshes, each every 10 s by default; pings), which the ramp also pays
# for its members. The others are held only until the ramp's CPU is read.
# KEEP_LOGS=DIR keeps the gateways' logs and the testers' reports.
UPKEEP=10
for size in $SIZES; do
  # Small sizes are repeated on fresh canvases (up to 10,000 joins, at most
  # 20 canvases): CPU time is read in clock ticks (10 ms), too coarse for 100.
  reps=$(( size >= 10000 ? 1 : (10000 / size > 20 ? 20 : 10000 / size) ))
  redis-cli -p $REDIS config resetstat >/dev/null
  rj=0 gj=0 member_secs=0
  rm -f "$dir"/report-*.json
  for rep in $(seq "$reps"); do
    canvas="grow-$size-$rep-$RANDOM"
    testers=()
    r0=$(cpu "$RPID"); g0=$(gateways_cpu); t0=$(now)
    for i in $(seq 0 $((N - 1))); do
      ./target/release/loadtest --json idle --url ws://127.0.0.1:$((PORT + i))/ws \
          --connections $((size / N)) --first-user $((i * size / N)) --rate $((RATE / N)) --concurrency $((512 / N + 1)) \
          --hold-secs $(( rep == reps ? UPKEEP + 12 : 2 )) --join "$canvas" >"$dir/report-$rep-$i.json" &
      testers+=($!)
    done
    # The ramp ends when every connection is in (or, with failures, once
    # the count stops growing for 2 s).
    want=$(( size / N * N )) last=-1 still=0
    while open=$(open_now); [ "$open" -lt "$want" ]; do
      if [ "$open" = "$last" ]; then still=$((still + 1)); else still=0; fi
      [ $still -ge 20 ] && break
      last=$open
      sleep 0.1
    done
    r1=$(cpu "$RPID"); g1=$(gateways_cpu); t1=$(now)
    redis-cli -p $REDIS info commandstats >"$dir/commandstats"
    rj=$(add "$rj" "$r1" "$r0"); gj=$(add "$gj" "$g1" "$g0")
    # Joins spread over the ramp: on average half the members were held.
    member_secs=$(awk -v m="$member_secs" -v n="$open" -v a="$t0" -v b="$t1" 'BEGIN {print m + n * (b - a) / 2}')
    if [ "$rep" = "$reps" ]; then
      # (The testers hold 12 s past UPKEEP from their own ramp's end, for
      # those that finished first.)
      sleep $UPKEEP
      r2=$(cpu "$RPID"); g2=$(gateways_cpu); t2=$(now); held=$(( (open + $(open_now)) / 2 ))
      ru=$(add 0 "$r2" "$r1"); gu=$(add 0 "$g2" "$g1"); tu=$(add 0 "$t2" "$t1")
      echo "ramp: $open of $want in $(add 0 "$t1" "$t0") s; held $held" >&2
    fi
    # A tester with failed connections exits non-zero; its report says why.
    for t in "${testers[@]}"; do wait "$t" || true; done
    # Every leave has reached the gateways before the next ramp.
    deadline=$((SECONDS + 60))
    until [ "$(open_now)" = 0 ] || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
  done
  python3 - "$dir" "$size" "$reps" "$N" "$rj" "$gj" "$member_secs" "$ru" "$gu" "$tu" "$held" <<'PY'
import glob, json, sys
d, n, reps, gws = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rj, gj, member_secs, ru, gu, tu = map(float, sys.argv[5:11])
held = int(sys.argv[11])
runs = {}
for f in glob.glob(d + "/report-*.json"):
    rep = f.rsplit("/", 1)[1].split("-")[1]
    runs.setdefault(rep, []).append(json.load(open(f)))
members = sum(r["opened"] for r in runs[next(iter(runs))])
joins = sum(r["opened"] for rs in runs.values() for r in rs)
# The testers of one canvas run at once: its ramp is the slowest one's.
ramp = sum(max(r["ramp_secs"] for r in rs) for rs in runs.values())
failed = sum(r["failed"] for rs in runs.values() for r in rs)
dropped = sum(r["dropped"] for rs in runs.values() for r in rs)
every = [r for rs in runs.values() for r in rs]
p50 = sorted(r["join_p50_ms"] for r in every)[len(every) // 2]
p99 = max(r["join_p99_ms"] for r in every)
# Upkeep: CPU per held member per second; the ramp's share of it is
# taken off to leave what the joins themselves cost.
r_up, g_up = ru / (tu * held), gu / (tu * held)
print("%6d members (x%d canvases, %d gateway%s): %.0f joins/s, join p50 %.2f ms p99 %.2f ms, "
      "Redis CPU %.0f us/join (%.0f less upkeep), gateway CPU %.0f us/join (%.0f less upkeep); "
      "held member: Redis %.2f us/s, gateways %.2f us/s%s"
      % (members, reps, gws, "s" if gws > 1 else "", joins / ramp, p50, p99,
         rj * 1e6 / joins, (rj - r_up * member_secs) * 1e6 / joins,
         gj * 1e6 / joins, (gj - g_up * member_secs) * 1e6 / joins,
         r_up * 1e6, g_up * 1e6,
         (", %d failed (%s)" % (failed, next(r["first_error"] for r in every if r["first_error"]))
        if failed else "") + (", %d dropped while held" % dropped if dropped else "")))
# Where Redis's time went: its busiest commands, from the first ramp to the
# end of the last (with the earlier canvases' holds and leaves).
stats = []
for line in open(d + "/commandstats"):
    if line.startswith("cmdstat_"):
        name, fields = line.strip()[8:].split(":", 1)
        f = dict(kv.split("=") for kv in fields.split(","))
        stats.append((int(f["usec"]), name, int(f["calls"])))
print("  Redis: " + ", ".join("%s %d calls %.0f us/join" % (name, calls, usec / joins)
                              for usec, name, calls in sorted(stats, reverse=True)[:5]))
if failed:
    # What the gateways logged about it.
    import collections, re
    for f in sorted(glob.glob(d + "/gateway-*.log")):
        kinds = collections.Counter(
            re.sub(r"^\S+\s+", "", re.sub(r"\x1b\[[0-9;]*m", "", l.strip()))[:200]
            for l in open(f, errors="replace") if "WARN" in l or "ERROR" in l)
        for line, n in kinds.most_common(3):
            print("  %s: %d x %s" % (f.rsplit("/", 1)[1], n, line))
PY
done
