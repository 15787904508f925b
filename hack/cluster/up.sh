#!/usr/bin/env bash
# Starts the local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the
# kwok controller as local processes (kwokctl's binary runtime), plus fake nodes and fault stages.
# Usage: hack/cluster/up.sh   (also `make cluster`); state lives in .cluster/ of the repository.
# INCIDENT_CLUSTER_FEATURE_GATES (e.g. WatchList=false) sets the components' feature gates, to measure
# against an API server that behaves like an older release.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/versions.env"
source "$here/lib.sh"

bin="$("$here/build.sh")"
start=$SECONDS
mkdir -p "$CLUSTER_DIR"
export KWOK_WORKDIR="$CLUSTER_DIR/kwok"
export KWOK_KUBE_VERSION="$KUBERNETES_VERSION"
export KWOK_ETCD_VERSION="${ETCD_VERSION#v}"
export KWOK_KUBECTL_BINARY="$bin/kubectl"

if "$bin/kwokctl" get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  die "cluster $CLUSTER_NAME already exists (kubeconfig $KUBECONFIG_PATH); run 'make cluster-down' first"
fi

# Canned container logs, served by kwok for every pod (see docs/local-cluster.md). kwok reads CRI-format
# files, so each committed line gets a timestamp and stream prefix; the previous instance's lines are
# stamped a minute before the current one's.
logs_dir="$(cd "$CLUSTER_DIR" && pwd)/pod-logs"
mkdir -p "$logs_dir"
utc() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S 2>/dev/null || date -u -r "$1" +%Y-%m-%dT%H:%M:%S; }
cri_log() { awk -v ts="$1" '{ printf "%s.%09dZ stdout F %s\n", ts, NR * 1000000, $0 }' "$2"; }
now="$(date -u +%s)"
cri_log "$(utc $((now - 60)))" "$here/logs/previous.log" >"$logs_dir/previous.log"
cri_log "$(utc "$now")" "$here/logs/current.log" >"$logs_dir/current.log"
cat >"$CLUSTER_DIR/pod-logs.yaml" <<YAML
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: canned-logs
spec:
  # No selector: ClusterLogs can only select pods by namespace and name, so every pod gets these files.
  logs:
  - logsFile: "$logs_dir/current.log"
    previousLogsFile: "$logs_dir/previous.log"
YAML

gates=()
[[ -n "${INCIDENT_CLUSTER_FEATURE_GATES:-}" ]] && gates=(--kube-feature-gates "$INCIDENT_CLUSTER_FEATURE_GATES")
# Ports are left to kwokctl, which picks free ones, so two checkouts can each run a cluster.
"$bin/kwokctl" create cluster \
  "${gates[@]}" \
  --name "$CLUSTER_NAME" \
  --runtime binary \
  --etcd-binary "$bin/etcd" \
  --kube-apiserver-binary "$bin/kube-apiserver" \
  --kube-controller-manager-binary "$bin/kube-controller-manager" \
  --kube-scheduler-binary "$bin/kube-scheduler" \
  --kwok-controller-binary "$bin/kwok" \
  --kube-authorization=true \
  --config "$here/kwokctl.yaml" \
  --config "$here/stages/nodes.yaml" \
  --config "$here/stages/pods.yaml" \
  --config "$CLUSTER_DIR/pod-logs.yaml" \
  --kubeconfig "$KUBECONFIG_PATH" \
  --wait 60s >&2

kubectl=("$bin/kubectl" --kubeconfig "$KUBECONFIG_PATH")
"${kubectl[@]}" apply -f "$here/nodes.yaml" >&2
"${kubectl[@]}" wait --for=condition=Ready node --all --timeout=60s >&2
# Pods need the namespace's default ServiceAccount, which kube-controller-manager creates.
until "${kubectl[@]}" -n default get serviceaccount default >/dev/null 2>&1; do
  (( SECONDS - start < 60 )) || die "the default ServiceAccount never appeared; is kube-controller-manager running? logs: $KWOK_WORKDIR/clusters/$CLUSTER_NAME/logs"
  sleep 0.5
done

cat >&2 <<MSG

Local cluster '$CLUSTER_NAME' is ready in $((SECONDS - start))s (Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION).
  export KUBECONFIG=$KUBECONFIG_PATH
  export PATH=$bin:\$PATH      # kubectl of the same version
  kubectl get nodes
Canned container logs:  kubectl logs POD; kubectl logs --previous POD   (hack/cluster/logs/)
Make a node NotReady:  kubectl label node kwok-node-0 incident.dev/fault=notready   (undo: incident.dev/fault-)
Stop it with: make cluster-down
MSG
