#!/usr/bin/env python3
"""Checks every panel query of the dashboards against a real Prometheus.

    python3 deploy/grafana/check_dashboards.py http://127.0.0.1:18090

For each query of each panel: it must be valid PromQL and return at least
one series with a finite value now. Grafana's `$__rate_interval` becomes
`--rate-interval` (default 1m). Also checks that every scrape target is up
and every loaded alert rule evaluates without error. Exit status 1 lists
what failed. deploy/local/verify.sh runs this against a loaded local cluster.
"""

import argparse
import json
import math
import sys
import urllib.parse
import urllib.request
from pathlib import Path

DASHBOARDS = Path(__file__).resolve().parent / "dashboards"


def get(base, path, **params):
    url = f"{base}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    if body.get("status") != "success":
        raise RuntimeError(f"{path}: {body}")
    return body["data"]


def queries(dashboard):
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def finite_values(result):
    for series in result:
        value = series.get("value", [None, "NaN"])[1]
        try:
            if math.isfinite(float(value)):
                yield series
        except ValueError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prometheus", help="base URL, e.g. http://127.0.0.1:18090")
    ap.add_argument("--rate-interval", default="1m")
    args = ap.parse_args()
    base = args.prometheus.rstrip("/")
    failures = []

    targets = get(base, "/api/v1/targets")["activeTargets"]
    if not targets:
        failures.append("prometheus has no scrape targets")
    for t in targets:
        if t["health"] != "up":
            failures.append(f"target {t['labels'].get('job')} {t['scrapeUrl']} is {t['health']}: {t.get('lastError')}")

    rules = [r for g in get(base, "/api/v1/rules")["groups"] for r in g["rules"]]
    if not rules:
        failures.append("no alert rules loaded")
    for r in rules:
        if r.get("health") not in ("ok", "unknown"):
            failures.append(f"rule {r['name']}: {r.get('health')} {r.get('lastError')}")

    checked = 0
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for title, expr in queries(board):
            promql = expr.replace("$__rate_interval", args.rate_interval)
            checked += 1
            try:
                data = get(base, "/api/v1/query", query=promql)
            except Exception as err:  # an HTTP 400 carries the parse error
                failures.append(f"{board['title']} / {title}: query failed: {err}\n    {promql}")
                continue
            result = data["result"]
            if not result:
                failures.append(f"{board['title']} / {title}: no data\n    {promql}")
            elif not any(finite_values(result)):
                failures.append(f"{board['title']} / {title}: only NaN/Inf\n    {promql}")
            else:
                print(f"ok  {board['title']} / {title}: {len(result)} series")

    print(f"{checked} queries, {len(targets)} targets, {len(rules)} rules checked")
    if failures:
        print("\nFAILED:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
