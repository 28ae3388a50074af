# The commands people and CI run. `.ci/run` calls `lint` and `test`.

CARGO ?= cargo
# nextest runs the integration tests (each with its own Redis) in parallel
# processes; fall back to cargo test where it is not installed.
TEST_RUNNER := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo "nextest run" || echo "test")

.PHONY: bench-floor bench-profile bench-scaling image run cluster cluster-status cluster-down test test-redis-cluster test-faults sdk-test fuzz check-deploy verify-cluster lint fmt bench bench-micro bench-idle bench-persister help

help:
	@echo "make run         the demo at http://127.0.0.1:8080/ on a standalone dev gateway (ws://127.0.0.1:8080/ws, in-memory bus, dev token in the log)"
	@echo "make cluster     local cluster: Redis, Postgres, 2 gateways, persister, nginx on :8080, Prometheus"
	@echo "make cluster-status / cluster-down   its state; stop it (data kept; deploy/local/cluster.sh down --purge deletes it)"
	@echo "make test        the whole test suite: cargo tests, deploy checks, the loaded local cluster against the dashboards"
	@echo "make test-redis-cluster  the Redis integration tests again, each on a private Redis Cluster (also part of make test)"
	@echo "make test-faults the fault suite alone (also part of make test): Redis, Postgres, persister and gateway faults under steady writes"
	@echo "make sdk-test    the TypeScript SDK's lint, unit and integration tests (also part of make test)"
	@echo "make fuzz        1,000,000 mutated inputs per fuzz target (fuzz/README.md)"
	@echo "make image       the container image (gateway, persister, loadtest) with Docker or Podman: IMAGE=easel:local"
	@echo "make check-deploy  alert rules (promtool), kustomize overlays (schemas), Compose and nginx configs"
	@echo "make verify-cluster  local cluster under load: every dashboard query returns data"
	@echo "make lint        cargo fmt --check and clippy -D warnings"
	@echo "make bench       the load targets: fan-out, durable, resume, churn (docs/BENCHMARKS.md)"
	@echo "make bench-micro criterion: codec, hub dispatch, Redis publish"
	@echo "make bench-idle  gateway memory per idle connection (docs/BENCHMARKS.md)"
	@echo "make bench-scaling gateway and Redis CPU per delivery with 1, 2, 4 gateways, single Redis and Redis Cluster"
	@echo "make bench-floor the floor without Easel: one write per member per broadcast, 1,000 and 9,000 members"
	@echo "make bench-profile where a gateway's CPU per delivery goes, next to the floor's (needs perf)"
	@echo "make bench-persister  persister throughput and durability lag (local Redis and PostgreSQL)"

run:
	cd clients/js && npm ci --no-audit --no-fund && node scripts/build-demo.mjs
	$(CARGO) run --release -p gateway -- --dev --static-dir clients/demo/dist --canvas-width 128 --canvas-height 128

cluster:
	deploy/local/cluster.sh up --prometheus

cluster-status:
	deploy/local/cluster.sh status

cluster-down:
	deploy/local/cluster.sh down

test:
	deploy/install-deps.sh
	$(CARGO) $(TEST_RUNNER) --workspace
	$(MAKE) test-redis-cluster
	$(MAKE) sdk-test
	deploy/check.sh
	deploy/local/verify.sh

# The integration tests of the crates that use Redis, each test's Redis a
# private six-node Redis Cluster instead of one server.
test-redis-cluster:
	EASEL_TEST_REDIS=cluster $(CARGO) $(TEST_RUNNER) -p fanout -p store -p gateway -p persister -p loadtest --test '*'

# The fault suite (gateway/tests/faults), with its report: per fault, the
# writes acked, lost, applied twice, numbered twice, answered E012, and
# whether any loss was within the documented window.
test-faults:
	rm -rf target/tmp/faults
	$(CARGO) $(TEST_RUNNER) -p gateway --test faults
	@echo "| fault | acked | lost | duplicates | seq reused | E012 resent | within window |"
	@echo "|---|---|---|---|---|---|---|"
	@cat target/tmp/faults/*.md

# The TypeScript SDK (clients/js) and the demo (clients/demo): lint, type
# check, unit tests, the integration tests against gateway processes on a
# private Redis, and the browser tests in Debian's Chromium.
sdk-test:
	cd clients/js && npm ci --no-audit --no-fund
	# The gateway binary, built as the cargo tests build it (no rebuild after them).
	$(CARGO) test --workspace --no-run -q
	cd clients/js && npm run lint && npm test && npm run test:browser

fuzz:
	$(CARGO) run --release -p fuzz -- --executions 1000000

check-deploy:
	deploy/install-deps.sh
	deploy/check.sh

# The one image every Kubernetes overlay and the Compose file run, built
# with Docker or Podman, whichever is here. Push it to your registry and
# name it in the overlay's `images:` (docs/OPERATIONS.md, "Kubernetes").
IMAGE ?= easel:local
CONTAINER ?= $(shell command -v docker >/dev/null 2>&1 && echo docker || (command -v podman >/dev/null 2>&1 && echo podman))
image:
	@test -n "$(CONTAINER)" || { echo "make image needs Docker or Podman (Debian: apt-get install podman)"; exit 1; }
	$(CONTAINER) build -t $(IMAGE) .

verify-cluster:
	deploy/local/verify.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	loadtest/bench/targets.sh

bench-micro:
	$(CARGO) bench -p shared --bench codec
	$(CARGO) bench -p fanout --bench dispatch
	$(CARGO) bench -p store --bench publish

bench-idle:
	loadtest/bench/idle.sh 5000

bench-persister:
	loadtest/bench/persister.sh

# The floor every fan-out figure is compared with (docs/BENCHMARKS.md,
# "The floor"): one write per member per broadcast, no Easel.
bench-scaling:
	loadtest/bench/scaling.sh

bench-floor:
	$(CARGO) build --release -q -p loadtest
	target/release/loadtest floor --members 1000 --rounds 300
	target/release/loadtest floor --members 9000 --rounds 100

# perf profiles of a gateway during a 1,000-member fan-out and of the floor,
# grouped by where the CPU goes (docs/BENCHMARKS.md, "The floor").
bench-profile:
	loadtest/bench/profile.sh
