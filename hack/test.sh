#!/usr/bin/env bash
# The one test command (`make test`): builds the control plane (and Alertmanager, Prometheus, Flux) if needed, starts a fresh local
# cluster, runs every test (chart lint/golden, unit, property and e2e), and tears the cluster down even when tests fail.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

hack/cluster/build.sh >/dev/null
# Alertmanager and Prometheus for the e2e tests that need the real programs, built once into the cache by
# hack/cluster/monitoring.sh (cold, on 2 cores with an empty Go cache: about 3 minutes for alertmanager and
# about 6 for prometheus, after the control plane's ~13; warm: at once). Built before the cluster starts so
# a cold build does not keep a cluster waiting. Set both variables to use other binaries and skip the build.
if [[ -z "${INCIDENT_E2E_ALERTMANAGER:-}" || -z "${INCIDENT_E2E_PROMETHEUS:-}" ]]; then
  monitoring_bin="$(hack/cluster/monitoring.sh)"
  INCIDENT_E2E_ALERTMANAGER="${INCIDENT_E2E_ALERTMANAGER:-$monitoring_bin/alertmanager}"
  INCIDENT_E2E_PROMETHEUS="${INCIDENT_E2E_PROMETHEUS:-$monitoring_bin/prometheus}"
fi
export INCIDENT_E2E_ALERTMANAGER INCIDENT_E2E_PROMETHEUS
# Flux's source-controller and kustomize-controller with their CRDs, for the GitOps e2e tests, built once into
# the cache by hack/cluster/flux.sh (cold, on 2 cores with an empty Go cache and other builds beside it: about
# 12.5 minutes for source-controller and 7.5 more for kustomize-controller; warm: at once). Set INCIDENT_E2E_FLUX to another
# directory holding both binaries and crds/ to skip the build.
if [[ -z "${INCIDENT_E2E_FLUX:-}" ]]; then
  INCIDENT_E2E_FLUX="$(hack/cluster/flux.sh)"
fi
export INCIDENT_E2E_FLUX
# Argo Rollouts' controller and kubectl plugin with their CRDs, for the Rollout abort e2e test, built once into the
# cache by hack/cluster/argo-rollouts.sh (see its header for times; warm: at once). Set INCIDENT_E2E_ARGO_ROLLOUTS to
# another directory holding both binaries and crds/ to skip the build.
if [[ -z "${INCIDENT_E2E_ARGO_ROLLOUTS:-}" ]]; then
  INCIDENT_E2E_ARGO_ROLLOUTS="$(hack/cluster/argo-rollouts.sh)"
fi
export INCIDENT_E2E_ARGO_ROLLOUTS
# Argo CD's CRDs (no controller), for the Application pause e2e test: copied once into the cache from the release's
# Go module by hack/cluster/argocd-crds.sh (seconds; warm: at once).
if [[ -z "${INCIDENT_E2E_ARGOCD_CRDS:-}" ]]; then
  INCIDENT_E2E_ARGOCD_CRDS="$(hack/cluster/argocd-crds.sh)"
fi
export INCIDENT_E2E_ARGOCD_CRDS
# The Helm chart: lint and golden `helm template` output (seconds; no cluster needed).
hack/chart-test.sh
hack/cluster/down.sh 2>/dev/null || true
trap 'hack/cluster/down.sh' EXIT
hack/cluster/up.sh

export INCIDENT_E2E_KUBECONFIG="$root/.cluster/kubeconfig"
# Python with the packages the e2e receivers use (standardwebhooks), made once outside the repository.
INCIDENT_E2E_PYTHON="$(hack/python-env.sh)"
export INCIDENT_E2E_PYTHON
cargo test --all-targets --locked "$@"

# The demo, in its quick form, so `make demo` cannot rot (its output goes to a file; shown on failure).
demo_log="$root/.cluster/demo.log"
if ! QUICK=1 hack/demo.sh >"$demo_log" 2>&1; then
  cat "$demo_log" >&2
  echo "error: the demo failed (hack/demo.sh); its output is above" >&2
  exit 1
fi
echo "demo (quick form) OK: $(grep -c '==>' "$demo_log") steps narrated"
