#!/usr/bin/env bash
# A LOADTEST_WRAPPER for loadtest/bench/cluster.sh: runs SDK members
# (scripts/sdk-latency.mjs) on the load tester's first canvas during its
# run, so both report delivery latency on the same fan-out.
#
#   LOADTEST_WRAPPER=clients/js/scripts/with-sdk.sh SDK_MEMBERS=20 \
#     loadtest/bench/cluster.sh 2 fanout --members 1000 --rate 100 --duration-secs 30
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
url="" secs=30 prev=""
for arg in "$@"; do
  case "$prev" in
    --url) url=$arg ;;
    --duration-secs) secs=$arg ;;
  esac
  prev=$arg
done
(cd "$here" && npm run -s build)
node --experimental-websocket "$here/scripts/sdk-latency.mjs" --url "$url" --canvas load-0 \
  --members "${SDK_MEMBERS:-20}" --secs "$secs" &
sdk=$!
"$@"
wait "$sdk"
