# incident-operator developer entry points. `make test` is the one test command (CI runs it).
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

.PHONY: demo chaos bench-detection bench-notifications bench-alerts bench-rollback bench-status-page chart-crds chart-test test cluster cluster-down cluster-build cluster-pin monitoring-build flux-build argo-rollouts-build run crds lint

## test: build the control plane if needed, start a fresh cluster, run all tests, always tear down
test:
	hack/test.sh

## cluster: start the local control plane (kubeconfig at .cluster/kubeconfig)
cluster:
	hack/cluster/up.sh

## cluster-down: stop the local control plane and delete its state
cluster-down:
	hack/cluster/down.sh

## cluster-build: build the control plane binaries into the cache (no cluster)
cluster-build:
	hack/cluster/build.sh >/dev/null

## cluster-pin: rewrite hack/cluster/modules/*/go.mod from hack/cluster/versions.env
cluster-pin:
	hack/cluster/pin.sh

## monitoring-build: build alertmanager, amtool and prometheus into the cache (no cluster; `make test` does it when missing)
monitoring-build:
	@bin="$$(hack/cluster/monitoring.sh)"; echo "alertmanager, amtool, prometheus: $$bin"

## argo-rollouts-build: build Argo Rollouts' controller and kubectl plugin, with their CRDs, into the cache (no cluster; `make test` does it when missing)
argo-rollouts-build:
	@dir="$$(hack/cluster/argo-rollouts.sh)"; echo "rollouts-controller, kubectl-argo-rollouts, crds/: $$dir"

## flux-build: build Flux's source-controller and kustomize-controller, with their CRDs, into the cache (no cluster; `make test` does it when missing)
flux-build:
	@dir="$$(hack/cluster/flux.sh)"; echo "source-controller, kustomize-controller, crds/: $$dir"

## run: run the operator from source against the local cluster
run:
	KUBECONFIG=$(CURDIR)/.cluster/kubeconfig cargo run -- run --http-addr 127.0.0.1:8080

## crds: regenerate crds/ from the Rust types in src/api, and the Helm chart's copy of them
crds:
	cargo run --quiet -- crds --dir crds
	$(MAKE) chart-crds

## chart-crds: copy crds/ into charts/incident-operator/crds/ (a test fails when they differ)
chart-crds:
	rm -f charts/incident-operator/crds/*.yaml
	mkdir -p charts/incident-operator/crds
	cp crds/*.yaml charts/incident-operator/crds/

## chart-test: helm lint and golden `helm template` output of charts/incident-operator (UPDATE_GOLDEN=1 rewrites)
chart-test:
	hack/chart-test.sh

## bench-rollback: rollback latency, operator vs kubectl rollout undo (needs `make cluster`)
bench-rollback:
	cargo bench --bench rollback

## bench-detection: detection latency and operator memory with 5,000 pods (needs `make cluster`; PART=latency|memory|all)
bench-detection:
	cargo bench --bench detection

## bench-notifications: incident opened → first webhook message, alone and beside a dead receiver (needs `make cluster`; INCIDENTS=n, ACKS=n)
bench-notifications:
	cargo bench --bench notifications

## bench-alerts: webhook → Incident latency, a burst of 1,000 alerts, and error spike → Prometheus → Alertmanager → Incident (needs `make cluster`; REQUESTS=n, ROUNDS=n, PART=webhook|burst|pipeline|all)
bench-alerts:
	cargo bench --bench alerts

## bench-escalation: a level's deadline → its page at a live webhook receiver, climbs overlapping (needs `make cluster`; INCIDENTS=n, CONCURRENT=n, WAIT=2s)
bench-escalation:
	cargo bench --bench escalation

## bench-status-page: requests/s and p99 of summary.json and the HTML page at 100 clients, 1,000 incidents in history (needs `make cluster`; INCIDENTS=n, SECONDS=n, CONNECTIONS=n)
bench-status-page:
	cargo bench --bench status_page

## chaos: the chaos campaign (docs/reliability.md): TRIALS trials of random SIGKILLs (default 50), then a kube-apiserver restart and a 20 s etcd pause mid-incident; prints the table (needs `make cluster`; INCIDENT_E2E_CHAOS_SEED=n reruns one)
chaos:
	@INCIDENT_E2E_KUBECONFIG=$(CURDIR)/.cluster/kubeconfig INCIDENT_E2E_PYTHON=$$(hack/python-env.sh) \
	  INCIDENT_E2E_CHAOS_TRIALS=$${TRIALS:-50} INCIDENT_E2E_CHAOS_FAULTS=1 \
	  cargo test --test e2e chaos:: -- --nocapture 2>&1 | grep -E '^chaos|test result|panicked|left|right'

## demo: the whole story on the local cluster (starts it if needed): broken rollout → incident → runbook rollback → resolved
demo:
	hack/demo.sh

## lint: formatting and clippy, as CI checks them
lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
