# Shared helpers for hack/cluster scripts; sourced after versions.env.
die() { echo "error: $*" >&2; exit 1; }
cache_root() { echo "${XDG_CACHE_HOME:-$HOME/.cache}/incident-operator"; }
cluster_bin_dir() { echo "$(cache_root)/k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}/bin"; }
# Alertmanager and Prometheus (monitoring.sh): one directory, each binary marked with its own version, so
# bumping one rebuilds that one only, and bumping the control plane rebuilds neither.
monitoring_bin_dir() { echo "$(cache_root)/monitoring/bin"; }
# Flux's controllers and their CRDs (flux.sh): likewise one directory, each controller marked with its version.
flux_bin_dir() { echo "$(cache_root)/flux/bin"; }
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER_NAME="${INCIDENT_CLUSTER_NAME:-incident-operator}"
# Everything a running cluster owns: kwok's workdir (pki, etcd data, logs) and the kubeconfig.
CLUSTER_DIR="${INCIDENT_CLUSTER_DIR:-$repo_root/.cluster}"
KUBECONFIG_PATH="$CLUSTER_DIR/kubeconfig"
