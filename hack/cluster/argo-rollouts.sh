#!/usr/bin/env bash
# Builds Argo Rollouts' controller and kubectl plugin from the release's Go module through the module proxy, at
# ARGO_ROLLOUTS_VERSION (versions.env), into a cache outside the repository, with the release's CRDs copied from
# the same module, for the e2e test of aborting a Rollout (tests/e2e/argo_rollouts.rs). A warm cache returns at
# once. Prints the directory on stdout; progress on stderr. `make argo-rollouts-build` runs it; `make test`
# (hack/test.sh) runs it and exports INCIDENT_E2E_ARGO_ROLLOUTS=<dir>. The directory holds:
#   rollouts-controller     the controller (cmd/rollouts-controller, CGO_ENABLED=0 -trimpath, the version stamped
#                           as the release's Makefile stamps it)
#   kubectl-argo-rollouts   the kubectl plugin (cmd/kubectl-argo-rollouts), whose `abort` the operator's abort matches
#   crds/*.yaml             manifests/crds: Rollout, AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate,
#                           Experiment (the controller watches all of them)
# marked .argo-rollouts-<version> once complete, built in a staging directory beside bin/ and renamed into it.
#
# The module: hack/cluster/modules/argo-rollouts (pin.sh writes it), the release's `replace` directives copied in,
# since a wrapper module ignores a dependency's replaces. v1.10.2 declares go 1.26.10, newer than the machine's
# Go 1.26.8: its go commands run with GOTOOLCHAIN=$ARGO_ROLLOUTS_GOTOOLCHAIN (the one newer Go the module proxy
# serves), here only.
#
# Times on the project's 2-core machine, measured while a cargo build shared it, with the Go build cache warm
# from the Flux builds (the k8s.io libraries): the controller 29 minutes of wall time for 6 minutes of CPU; the
# plugin after it, on a warm cache: see docs/gitops.md. Warm: at once.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
source "$here/lib.sh"

bin="$(cache_root)/argo-rollouts/bin"
marker=".argo-rollouts-$ARGO_ROLLOUTS_VERSION"
module=github.com/argoproj/argo-rollouts
if [[ -f "$bin/$marker" && -x "$bin/rollouts-controller" && -x "$bin/kubectl-argo-rollouts" ]] &&
  compgen -G "$bin/crds/*.yaml" >/dev/null; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH; install Go >= $GO_MIN_VERSION"
grep -q "$module $ARGO_ROLLOUTS_VERSION" "$here/modules/argo-rollouts/go.mod" ||
  die "hack/cluster/modules/argo-rollouts does not match versions.env; run 'make cluster-pin' and commit the result"
export GOTOOLCHAIN="$ARGO_ROLLOUTS_GOTOOLCHAIN" GOWORK=off

start=$SECONDS
note() { printf '[argo-rollouts build %4ds] %s\n' "$((SECONDS - start))" "$*" >&2; }
mkdir -p "$bin"
staging="$(mktemp -d "$bin/../.argo-rollouts-partial.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
log="$staging/build.log"

# The verified, read-only copy of the release in the module cache: its manifests/crds are the CRDs it installs.
mod="$(cd "$here/modules/argo-rollouts" && GOFLAGS=-mod=readonly go mod download "$module" &&
  GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' "$module")"
[[ -f "$mod/manifests/crds/rollout-crd.yaml" ]] || die "no manifests/crds/rollout-crd.yaml under $mod"
mkdir -p "$staging/crds"
cp "$mod"/manifests/crds/*-crd.yaml "$staging/crds/"
chmod u+w "$staging"/crds/*.yaml

ldflags="-s -w -X $module/utils/version.version=${ARGO_ROLLOUTS_VERSION#v}"
for cmd in rollouts-controller kubectl-argo-rollouts; do
  note "$cmd $ARGO_ROLLOUTS_VERSION"
  (cd "$here/modules/argo-rollouts" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" nice -n 10 \
    go build -v -trimpath -ldflags "$ldflags" -o "$staging/$cmd" "$module/cmd/$cmd") >>"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 20 & wait $! || true
    kill -0 "$pid" 2>/dev/null && note "$cmd: $(wc -l <"$log") packages compiled so far"
  done
  if ! wait "$pid"; then
    tail -n 40 "$log" >&2
    cp "$log" "$bin/../failed-build.log"
    die "building $cmd failed (full log: $(cd "$bin/.." && pwd)/failed-build.log)"
  fi
  [[ -x "$staging/$cmd" ]] || die "build produced no $cmd"
done
rm -f "$bin"/.argo-rollouts-*
for cmd in rollouts-controller kubectl-argo-rollouts; do mv "$staging/$cmd" "$bin/$cmd"; done
rm -rf "$bin/crds"
mv "$staging/crds" "$bin/crds"
touch "$bin/$marker"
note "done in $((SECONDS - start))s"
echo "$bin"
