#!/usr/bin/env python3
"""Writes the generated deployment files:

- deploy/grafana/dashboards/*.json, Easel's Grafana dashboards, described
  here once, compactly, and the same JSON again in k8s/base/grafana/ for the
  Kubernetes dashboard ConfigMap (kustomize reads files only under its root);
- k8s/base/prometheusrule.yaml, deploy/prometheus/alerts.yml wrapped in a
  Prometheus Operator PrometheusRule.

`--check` fails when a committed file differs from what this script would
write (CI runs it), so edit the sources and regenerate:

    python3 deploy/generate.py          # write
    python3 deploy/generate.py --check  # compare

Every query's data is checked against a real Prometheus scraping a loaded
local cluster by deploy/local/verify.sh (check_dashboards.py).
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = [ROOT / "deploy/grafana/dashboards", ROOT / "k8s/base/grafana"]
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
PROMETHEUS_RULE = ROOT / "k8s/base/prometheusrule.yaml"
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


def q(expr, legend=""):
    return (expr, legend)


def quantiles(metric, by="", qs=(0.5, 0.95, 0.99)):
    """p50/p95/p99 of a histogram, summed over pods (and `by`)."""
    group = f"le, {by}" if by else "le"
    suffix = f" {{{{{by}}}}}" if by else ""
    return [
        q(
            f"histogram_quantile({x}, sum by ({group}) (rate({metric}_bucket[{RATE}])))",
            f"p{int(x * 100)}{suffix}",
        )
        for x in qs
    ]


class Board:
    def __init__(self, uid, title, description):
        self.uid, self.title, self.description = uid, title, description
        self.panels = []
        self.y = 0
        self.x = 0
        self.next_id = 1

    def row(self, title):
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "id": self._id(),
                "title": title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
            }
        )
        self.y += 1

    def panel(self, title, queries, unit="short", kind="timeseries", width=12, desc=""):
        if self.x + width > 24:
            self._newline()
        targets = [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": e, "legendFormat": l or "__auto"}
            for i, (e, l) in enumerate(queries)
        ]
        p = {
            "type": kind,
            "id": self._id(),
            "title": title,
            "description": desc,
            "datasource": DS,
            "gridPos": {"h": 8, "w": width, "x": self.x, "y": self.y},
            "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        }
        if kind == "timeseries":
            p["options"] = {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
            p["fieldConfig"]["defaults"]["custom"] = {"lineWidth": 1, "fillOpacity": 10}
        else:
            p["options"] = {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value",
                "graphMode": "area",
            }
        self.panels.append(p)
        self.x += width

    def _newline(self):
        if self.x:
            self.y += 8
            self.x = 0

    def _id(self):
        self.next_id += 1
        return self.next_id - 1

    def json(self):
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["easel"],
            "timezone": "browser",
            "schemaVersion": 39,
            "version": 1,
            "editable": True,
            "graphTooltip": 1,
            "refresh": "10s",
            "time": {"from": "now-1h", "to": "now"},
            "templating": {
                "list": [
                    {
                        "name": "datasource",
                        "label": "Data source",
                        "type": "datasource",
                        "query": "prometheus",
                        "hide": 0,
                        "current": {},
                    }
                ]
            },
            "annotations": {"list": []},
            "links": [],
            "panels": self.panels,
        }


def overview():
    b = Board(
        "easel-overview",
        "Easel / Cluster overview",
        "Gateways: connections, messages, fan-out latency, errors, drops and resumes.",
    )
    b.row("Connections")
    b.panel(
        "Open connections per pod",
        [q("sum by (instance) (easel_gateway_connections_open)", "{{instance}}")],
    )
    b.panel("Open connections, cluster", [q("sum(easel_gateway_connections_open)", "open")], kind="stat", width=6)
    b.panel(
        "Memberships and canvases",
        [
            q("sum(easel_gateway_local_members)", "memberships"),
            q("sum(easel_gateway_joined_canvases)", "canvases joined (summed over pods)"),
        ],
        kind="stat",
        width=6,
    )
    b.panel(
        "Connections opened and closed /s",
        [
            q(f"sum(rate(easel_gateway_connections_opened_total[{RATE}]))", "opened"),
            q(f"sum by (reason) (rate(easel_gateway_connections_closed_total[{RATE}]))", "closed: {{reason}}"),
        ],
        unit="ops",
    )
    b.panel(
        "Connection failures /min",
        [
            q(f"sum by (reason) (rate(easel_gateway_upgrades_refused_total[{RATE}])) * 60", "refused: {{reason}}"),
            q(f"sum by (reason) (rate(easel_gateway_auth_failures_total[{RATE}])) * 60", "auth: {{reason}}"),
        ],
        desc="Upgrade refusals (HTTP errors) and failed authentications. Alert: EaselConnectionFailures.",
    )
    b.row("Messages")
    b.panel(
        "Messages in /s by type",
        [q(f"sum by (type) (rate(easel_gateway_messages_received_total[{RATE}]))", "{{type}}")],
        unit="ops",
    )
    b.panel(
        "Messages out /s",
        [
            q(f"sum(rate(easel_gateway_deliveries_total[{RATE}]))", "fan-out deliveries"),
            q(f"sum by (type) (rate(easel_gateway_messages_sent_total[{RATE}]))", "reply: {{type}}"),
        ],
        unit="ops",
    )
    b.panel(
        "Bytes in and out /s",
        [
            q(f"sum(rate(easel_gateway_received_bytes_total[{RATE}]))", "in"),
            q(f"sum(rate(easel_gateway_sent_bytes_total[{RATE}]))", "out"),
        ],
        unit="Bps",
    )
    b.panel(
        "Messages in /s per pod",
        [q(f"sum by (instance) (rate(easel_gateway_messages_received_total[{RATE}]))", "{{instance}}")],
        unit="ops",
    )
    b.row("Fan-out latency")
    b.panel(
        "Fan-out latency, cluster",
        quantiles("easel_gateway_fanout_latency_seconds"),
        unit="s",
        desc="From ingest on the origin gateway to the frame on a member's socket. Alert: EaselFanoutLatencyHigh (p95 > 200 ms).",
    )
    b.panel(
        "Fan-out p95 per destination pod",
        [
            q(
                f"histogram_quantile(0.95, sum by (le, instance) (rate(easel_gateway_fanout_latency_seconds_bucket[{RATE}])))",
                "{{instance}}",
            )
        ],
        unit="s",
    )
    b.row("Errors, drops, resumes")
    b.panel(
        "Error replies /s by code",
        [q(f"sum by (code) (rate(easel_gateway_errors_total[{RATE}]))", "{{code}}")],
        unit="ops",
        desc="Alert: EaselErrorRateHigh (errors above 1% of messages).",
    )
    b.panel(
        "Slow-consumer disconnects and refused durable writes /s",
        [
            q(f"sum(rate(easel_gateway_slow_consumer_disconnects_total[{RATE}]))", "slow consumers (4008)"),
            q(f"sum(rate(easel_gateway_durable_writes_refused_total[{RATE}]))", "durable writes refused (E013)"),
        ],
        unit="ops",
    )
    b.panel(
        "Rate-limited operations /s by class",
        [q(f"sum by (class) (rate(easel_gateway_rate_limited_total[{RATE}]))", "{{class}}")],
        unit="ops",
        desc="Refused with E004 (connections: new connections per client address, HTTP 429).",
    )
    b.panel(
        "Resumes /s by outcome",
        [q(f"sum by (outcome) (rate(easel_gateway_resumes_total[{RATE}]))", "{{outcome}}")],
        unit="ops",
    )
    b.panel(
        "Bus: connected gateways and resyncs",
        [
            q("sum(easel_gateway_bus_connected)", "gateways with pub/sub"),
            q("count(easel_gateway_bus_connected)", "gateways"),
            q(f"sum(rate(easel_gateway_resyncs_total[{RATE}]))", "resyncs /s"),
        ],
        desc="Alert: EaselGatewayBusDisconnected.",
    )
    b.row("Resources")
    b.panel(
        "Gateway memory (share of limit)",
        [
            q(
                'process_resident_memory_bytes{job=~".*gateway.*"} / on (job, instance) easel_process_memory_limit_bytes',
                "{{instance}}",
            )
        ],
        unit="percentunit",
        desc="Alert: EaselMemoryHigh (above 80%).",
    )
    b.panel(
        "Gateway CPU (share of limit)",
        [
            q(
                f'rate(process_cpu_seconds_total{{job=~".*gateway.*"}}[{RATE}]) / on (job, instance) easel_process_cpu_limit_cores',
                "{{instance}}",
            )
        ],
        unit="percentunit",
        desc="Alert: EaselCpuHigh (above 70%).",
    )
    return b


def persister():
    b = Board(
        "easel-persister",
        "Easel / Persister",
        "Canvas logs from Redis Streams into Postgres: throughput, backlog, lag, commit latency.",
    )
    b.row("Throughput")
    b.panel(
        "Events persisted /s",
        [
            q(f"sum(rate(easel_persister_events_persisted_total[{RATE}]))", "persisted"),
            q(f"sum(rate(easel_persister_events_duplicate_total[{RATE}]))", "already stored (after a crash or claim)"),
        ],
        unit="ops",
    )
    b.panel(
        "Batches /s and batch size",
        [
            q(f"sum(rate(easel_persister_batches_total[{RATE}]))", "batches /s"),
            *quantiles("easel_persister_batch_size", qs=(0.5, 0.95)),
        ],
    )
    b.row("Backlog and lag")
    b.panel(
        "Unpersisted events",
        [
            q("sum(easel_persister_backlog_events)", "backlog (canvases touched last)"),
            q("max(easel_persister_backlog_max_events)", "largest one canvas"),
            q("max(easel_gateway_backlog_limit_events)", "refusal limit per canvas"),
        ],
        desc="Alert: EaselBacklogNearLimit (largest canvas above 80% of the limit).",
    )
    b.panel(
        "Lag",
        [q("max by (instance) (easel_persister_lag_seconds)", "{{instance}}")],
        unit="s",
        desc="Age of the oldest event in the last committed batch; 0 when caught up. Alert: EaselPersisterLagHigh.",
    )
    b.row("Postgres")
    b.panel("Commit latency", quantiles("easel_persister_commit_seconds"), unit="s")
    b.panel(
        "Errors, claims and snapshots /s",
        [
            q(f"sum by (kind) (rate(easel_persister_errors_total[{RATE}]))", "errors: {{kind}}"),
            q(f"sum(rate(easel_persister_claimed_total[{RATE}]))", "entries claimed from dead replicas"),
            q(f"sum(rate(easel_persister_snapshots_total[{RATE}]))", "snapshots"),
        ],
        unit="ops",
    )
    b.panel("Canvas logs known", [q("max(easel_persister_streams)", "streams")], kind="stat", width=6)
    b.panel(
        "Persister memory",
        [q('process_resident_memory_bytes{job=~".*persister.*"}', "{{instance}}")],
        unit="bytes",
        width=6,
    )
    return b


def redis():
    b = Board(
        "easel-redis",
        "Easel / Redis publish",
        "Gateways' view of Redis: publish round trips and the pub/sub connection.",
    )
    b.row("Publish")
    b.panel(
        "Publish latency by durability",
        quantiles("easel_gateway_bus_publish_seconds", by="durability", qs=(0.5, 0.95, 0.99)),
        unit="s",
        width=24,
        desc="From the gateway's publish call to Redis's reply: one script call for durable events (log append + publish), one PUBLISH for ephemeral ones.",
    )
    b.panel(
        "Publishes /s by durability",
        [q(f"sum by (durability) (rate(easel_gateway_bus_publish_seconds_count[{RATE}]))", "{{durability}}")],
        unit="ops",
    )
    b.panel(
        "Publish p99 per pod",
        [
            q(
                f"histogram_quantile(0.99, sum by (le, instance) (rate(easel_gateway_bus_publish_seconds_bucket[{RATE}])))",
                "{{instance}}",
            )
        ],
        unit="s",
    )
    b.row("Pub/sub")
    b.panel(
        "Canvas channels subscribed per pod",
        [q("sum by (instance) (easel_gateway_bus_subscriptions)", "{{instance}}")],
    )
    b.panel(
        "Pub/sub reconnects and unreadable frames",
        [
            q(f"sum(increase(easel_gateway_bus_reconnects_total[{RATE}]))", "reconnects"),
            q(f"sum(increase(easel_gateway_bad_bus_frames_total[{RATE}]))", "unreadable frames dropped"),
        ],
    )
    return b


def prometheus_rule():
    """alerts.yml's groups under a PrometheusRule's spec."""
    lines = ALERTS.read_text().splitlines()
    start = lines.index("groups:")
    body = "\n".join(("  " + l) if l else l for l in lines[start:])
    return (
        "# Generated by deploy/generate.py from deploy/prometheus/alerts.yml; edit that.\n"
        "apiVersion: monitoring.coreos.com/v1\n"
        "kind: PrometheusRule\n"
        "metadata:\n"
        "  name: easel-alerts\n"
        "  labels:\n"
        "    # kube-prometheus-stack picks up rules by its Helm release's name;\n"
        "    # overlays set theirs (k8s/overlays/prod).\n"
        "    release: kube-prometheus-stack\n"
        "spec:\n"
        f"{body}\n"
    )


def outputs():
    for board in (overview(), persister(), redis()):
        text = json.dumps(board.json(), indent=2) + "\n"
        for directory in DASHBOARDS:
            yield directory / f"{board.uid}.json", text
    yield PROMETHEUS_RULE, prometheus_rule()


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for path, text in outputs():
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale generated files: {', '.join(stale)}; run python3 deploy/generate.py", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
