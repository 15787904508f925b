#!/usr/bin/env bash
# Rewrites the go.mod/go.sum files under modules/ from versions.env. Run after changing a version; commit the result.
#
# Small modules rather than one: k8s.io/kubernetes requires etcd server v3.7 (for its own tests) and
# newer k8s.io libraries than kwok was released with, so one module would silently lift etcd off the
# v3.6 line and build kwok against libraries it was never tested with. Each binary builds against the
# dependency set its own release declares.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

# init_module DIR MODULE_PATH REQUIREMENT TOOL...
init_module() {
  local dir="$here/modules/$1" path="$2" requirement="$3"; shift 3
  mkdir -p "$dir"
  rm -f "$dir/go.mod" "$dir/go.sum"
  (cd "$dir" && go mod init "$path" >/dev/null 2>&1 && go mod edit -go="$GO_MIN_VERSION" -require="$requirement")
  for tool in "$@"; do (cd "$dir" && go mod edit -tool="$tool"); done
}

init_module kubernetes incident-operator.dev/cluster/kubernetes "k8s.io/kubernetes@$KUBERNETES_VERSION" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
# k8s.io/kubernetes points its staging modules at ./staging; outside its tree they are the published v0.x releases.
staging_version="v0.${KUBERNETES_VERSION#v1.}"
for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api \
  cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt \
  kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics \
  mount-utils pod-security-admission sample-apiserver streaming; do
  (cd "$here/modules/kubernetes" && go mod edit -replace="k8s.io/$m=k8s.io/$m@$staging_version")
done

init_module etcd incident-operator.dev/cluster/etcd "go.etcd.io/etcd/server/v3@$ETCD_VERSION" go.etcd.io/etcd/server/v3
init_module kwok incident-operator.dev/cluster/kwok "sigs.k8s.io/kwok@$KWOK_VERSION" \
  sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl

# helm is its own module for the same reason: it declares its own k8s.io library versions.
init_module helm incident-operator.dev/cluster/helm "helm.sh/helm/v3@$HELM_VERSION" helm.sh/helm/v3/cmd/helm

# Alertmanager and Prometheus (hack/cluster/monitoring.sh), each its own module for the same reason.
# alertmanager's go.sum pins the module zip that monitoring.sh copies and builds with the release's own
# go.mod/go.sum (its web UI assets are generated, not in the zip); prometheus builds from this module.
# `go mod tidy` raises prometheus's go line to what Prometheus declares (1.26.7 for v0.316.0).
init_module alertmanager incident-operator.dev/cluster/alertmanager \
  "github.com/prometheus/alertmanager@$ALERTMANAGER_VERSION" \
  github.com/prometheus/alertmanager/cmd/alertmanager github.com/prometheus/alertmanager/cmd/amtool
init_module prometheus incident-operator.dev/cluster/prometheus \
  "github.com/prometheus/prometheus@$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/prometheus

for dir in kubernetes etcd kwok helm alertmanager prometheus; do (cd "$here/modules/$dir" && go mod tidy); done

# Flux's controllers (hack/cluster/flux.sh), each its own module. Their releases build with a `replace` of their
# api module to ./api (the same source, published as <module>/api at the same version) and replaces that pin
# other modules (go-digest, kustomize, yaml.v3); a wrapper module ignores a dependency's replaces, so the
# non-local ones are copied here, and the api module comes at the version the release requires.
# `go mod tidy -e`: tidy also wants the modules the controllers' own tests import (gittestserver, helmtestserver,
# testserver at versions the proxy does not serve); the build needs none of them, and flux.sh builds with
# -mod=readonly, so a module the build does need and go.sum lacks fails there, by name.
# copy_replaces DIR MODULE@VERSION: the release go.mod's replaces whose target is a module, not a directory.
copy_replaces() {
  local dir="$here/modules/$1" gomod
  gomod="$(cd "$dir" && GOFLAGS=-mod=mod go mod download -json "$2" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [[ -f "$gomod" ]] || { echo "error: no go.mod downloaded for $2" >&2; exit 1; }
  awk '/^replace \($/ { block = 1; next } block && /^\)/ { block = 0; next }
       /^replace / { sub(/^replace /, ""); print; next } block { print }' "$gomod" |
    sed 's|//.*||' | awk 'NF == 4 && $2 == "=>" && $3 !~ /^\.\.?\// { print $1 "=" $3 "@" $4 }' |
    while read -r replacement; do (cd "$dir" && go mod edit -replace="$replacement"); done
}
for component in source-controller:"$FLUX_SOURCE_CONTROLLER_VERSION" kustomize-controller:"$FLUX_KUSTOMIZE_CONTROLLER_VERSION"; do
  name="${component%%:*}" version="${component#*:}"
  init_module "$name" "incident-operator.dev/cluster/$name" "github.com/fluxcd/$name@$version" "github.com/fluxcd/$name"
  copy_replaces "$name" "github.com/fluxcd/$name@$version"
done
# The one substitution: source-controller v1.9.6 requires github.com/fluxcd/pkg/artifact v0.18.3, and the proxy
# serves v0.18.0 as the newest v0.18.x (a patch release apart, same API).
(cd "$here/modules/source-controller" &&
  go mod edit -replace=github.com/fluxcd/pkg/artifact=github.com/fluxcd/pkg/artifact@v0.18.0)
for dir in source-controller kustomize-controller; do (cd "$here/modules/$dir" && go mod tidy -e 2>/dev/null); done

# Argo Rollouts (hack/cluster/argo-rollouts.sh): its controller and kubectl plugin from the release's module,
# with the release's module replaces (k8s.io libraries at v0.34.5, telegram-bot-api, go-check) copied in.
# v1.10.2 declares `go 1.26.10`, newer than the machine's Go: the one newer Go the proxy serves runs these
# commands (GOTOOLCHAIN, set here and in argo-rollouts.sh only).
(
  export GOTOOLCHAIN="$ARGO_ROLLOUTS_GOTOOLCHAIN"
  init_module argo-rollouts incident-operator.dev/cluster/argo-rollouts \
    "github.com/argoproj/argo-rollouts@$ARGO_ROLLOUTS_VERSION" \
    github.com/argoproj/argo-rollouts/cmd/rollouts-controller github.com/argoproj/argo-rollouts/cmd/kubectl-argo-rollouts
  copy_replaces argo-rollouts "github.com/argoproj/argo-rollouts@$ARGO_ROLLOUTS_VERSION"
  cd "$here/modules/argo-rollouts" && go mod tidy
)
# The HelmRelease CRD: helm-controller's API module (v1.6.x is Flux 2.8's, on the same fluxcd/pkg/apis/meta as the
# controllers above) and controller-gen; crds.go in that directory imports the API packages so tidy keeps them.
init_module helm-controller-crd incident-operator.dev/cluster/helm-controller-crd \
  "github.com/fluxcd/helm-controller/api@$FLUX_HELM_CONTROLLER_API_VERSION" sigs.k8s.io/controller-tools/cmd/controller-gen
(cd "$here/modules/helm-controller-crd" && go mod edit -require="sigs.k8s.io/controller-tools@$CONTROLLER_GEN_VERSION" &&
  go mod tidy)
