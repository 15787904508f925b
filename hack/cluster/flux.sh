#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from source through the Go module proxy, at the
# versions in versions.env, into a cache outside the repository, with their CRDs taken from the same module
# sources, for the GitOps e2e tests (tests/e2e/flux.rs). A warm cache returns at once. Prints the directory on
# stdout; progress on stderr. `make flux-build` runs it; `make test` (hack/test.sh) runs it and exports
# INCIDENT_E2E_FLUX=<dir>. The directory holds:
#   source-controller, kustomize-controller      the controllers (CGO_ENABLED=0 -trimpath, as their Dockerfiles)
#   crds/source-controller/*.yaml                GitRepository, OCIRepository, Bucket, HelmRepository, HelmChart,
#                                                ExternalArtifact (source-controller watches every one of them)
#   crds/kustomize-controller/*.yaml             Kustomization
#   crds/helm-controller/*.yaml                  HelmRelease (no helm-controller runs: the proxy does not serve it)
# the first two copied from the modules' config/crd/bases, the files Flux's own install manifests are built from;
# the HelmRelease CRD generated as Flux generates it (controller-gen crd:crdVersions=v1 over helm-controller's API
# module; only v2 is served, v2beta1/v2beta2 are +kubebuilder:skipversion), marker .helm-controller-crd-<versions>.
#
# ${XDG_CACHE_HOME:-~/.cache}/incident-operator/flux/bin is keyed by no version: each controller carries its own
# marker file (.source-controller-<version>, .kustomize-controller-<version>), written only after its binary and
# CRDs were built in a staging directory beside bin/ and renamed into it, so an interrupted build never leaves a
# cache that looks complete, and bumping one rebuilds that one alone.
#
# Versions: both at v1.9.6 (Flux 2.8). The proxy lists v1.10.1 too, but v1.10.x needs seven modules it does not
# serve (see versions.env) and Go >= 1.27; v1.9.6 needs Go 1.26, and source-controller one substitution
# (github.com/fluxcd/pkg/artifact v0.18.0 for v0.18.3, pin.sh). Should a later pin need a newer Go than the
# machine's, set GOTOOLCHAIN=<that go> for the `go` commands in this script only (the proxy serves go1.27.3).
#
# Cold build times, measured on the project's 2-core machine with an empty Go build cache (GOCACHE pointed at an
# empty directory), while other builds shared the machine (load about 3):
#   source-controller     about 12.5 minutes (741 s)
#   kustomize-controller  about 7.5 minutes more (441 s; it shares many packages with source-controller)
# 19.7 minutes in all for 11.4 minutes of CPU time (an idle machine should be faster; not measured).
#   HelmRelease CRD       about 2 minutes (controller-gen's build; measured with a partly warm Go cache, 69 s warm)
# Warm: at once.
# The Go builds run under `nice -n 10` so they disturb other work less. With an empty Go module cache, the
# module downloads come on top.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
source "$here/lib.sh"

bin="$(flux_bin_dir)"
sc_marker=".source-controller-$FLUX_SOURCE_CONTROLLER_VERSION"
kc_marker=".kustomize-controller-$FLUX_KUSTOMIZE_CONTROLLER_VERSION"
hr_marker=".helm-controller-crd-$FLUX_HELM_CONTROLLER_API_VERSION+controller-gen-$CONTROLLER_GEN_VERSION"
hr_ready() { [[ -f "$bin/$hr_marker" ]] && compgen -G "$bin/crds/helm-controller/*.yaml" >/dev/null; }
ready() { # ready NAME MARKER
  [[ -f "$bin/$2" && -x "$bin/$1" ]] && compgen -G "$bin/crds/$1/*.yaml" >/dev/null
}
if ready source-controller "$sc_marker" && ready kustomize-controller "$kc_marker" && hr_ready; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH; install Go >= $GO_MIN_VERSION"
# The modules must build what versions.env names; a stale pin would silently build something else.
grep -q "github.com/fluxcd/source-controller $FLUX_SOURCE_CONTROLLER_VERSION" "$here/modules/source-controller/go.mod" &&
  grep -q "github.com/fluxcd/kustomize-controller $FLUX_KUSTOMIZE_CONTROLLER_VERSION" \
    "$here/modules/kustomize-controller/go.mod" &&
  grep -q "github.com/fluxcd/helm-controller/api $FLUX_HELM_CONTROLLER_API_VERSION" \
    "$here/modules/helm-controller-crd/go.mod" &&
  grep -q "sigs.k8s.io/controller-tools $CONTROLLER_GEN_VERSION" "$here/modules/helm-controller-crd/go.mod" ||
  die "hack/cluster/modules do not match versions.env; run 'make cluster-pin' and commit the result"

start=$SECONDS
note() { printf '[flux build %4ds] %s\n' "$((SECONDS - start))" "$*" >&2; }

# need_go MODULE: the Go this module's go.mod asks for, refused up front rather than halfway through a build.
need_go() {
  local want have
  want="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$here/modules/$1/go.mod")"
  have="$(go env GOVERSION)"; have="${have#go}"
  if [[ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" != "$want" ]]; then
    [[ "$(go env GOTOOLCHAIN)" != local ]] ||
      die "$1 needs Go >= $want (modules/$1/go.mod) and this is Go $have with GOTOOLCHAIN=local; install a newer Go"
    note "$1 needs Go >= $want; Go $have will fetch that toolchain (GOTOOLCHAIN=$(go env GOTOOLCHAIN))"
  fi
}

# Staging directories live beside bin/ (same file system, so the final renames are atomic) and go on exit.
mkdir -p "$bin/crds"
staging_dirs=()
trap 'rm -rf ${staging_dirs[@]+"${staging_dirs[@]}"}' EXIT

# build NAME VERSION MARKER: the controller and its CRDs, staged, renamed into bin/, then marked.
build() {
  local name="$1" version="$2" marker="$3" staging log mod pid
  need_go "$name"
  staging="$(mktemp -d "$bin/../.$name-partial.XXXXXX")"
  staging_dirs+=("$staging")
  log="$staging/build.log"
  note "$name $version"
  # The verified, read-only copy of the module in the Go module cache: its config/crd/bases are the CRDs.
  mod="$(cd "$here/modules/$name" && GOWORK=off GOFLAGS=-mod=readonly go mod download "github.com/fluxcd/$name" &&
    GOWORK=off GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' "github.com/fluxcd/$name")"
  compgen -G "$mod/config/crd/bases/*.yaml" >/dev/null || die "no CRDs under $mod/config/crd/bases"
  mkdir -p "$staging/crds"
  cp "$mod"/config/crd/bases/*.yaml "$staging/crds/"
  chmod u+w "$staging"/crds/*.yaml

  (cd "$here/modules/$name" && GOWORK=off CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" nice -n 10 \
    go build -v -trimpath -ldflags "-s -w" -o "$staging/$name" "github.com/fluxcd/$name") >>"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 20 & wait $! || true
    kill -0 "$pid" 2>/dev/null && note "$name: $(wc -l <"$log") packages compiled so far"
  done
  if ! wait "$pid"; then
    tail -n 40 "$log" >&2
    cp "$log" "$bin/../failed-build.log"  # the staging directory goes on exit
    die "building $name failed (full log: $(cd "$bin/.." && pwd)/failed-build.log)"
  fi
  [[ -x "$staging/$name" ]] || die "build produced no $name"
  rm -f "$bin/.$name"-*
  mv "$staging/$name" "$bin/$name"
  rm -rf "$bin/crds/$name"
  mv "$staging/crds" "$bin/crds/$name"
  cat "$log" >>"$bin/build.log"
  touch "$bin/$marker"
  note "$name done"
}

# The HelmRelease CRD: controller-gen built (about 2 minutes cold) into the staging directory and run there on
# helm-controller's API packages; only the CRD is kept.
build_helmrelease_crd() {
  local staging log
  staging="$(mktemp -d "$bin/../.helm-controller-crd-partial.XXXXXX")"
  staging_dirs+=("$staging")
  log="$staging/build.log"
  note "HelmRelease CRD from github.com/fluxcd/helm-controller/api $FLUX_HELM_CONTROLLER_API_VERSION" \
    "(controller-gen $CONTROLLER_GEN_VERSION)"
  (cd "$here/modules/helm-controller-crd" && GOWORK=off CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" \
    nice -n 10 go build -trimpath -o "$staging/controller-gen" sigs.k8s.io/controller-tools/cmd/controller-gen &&
    mkdir -p "$staging/crds" &&
    GOWORK=off GOFLAGS=-mod=readonly "$staging/controller-gen" crd:crdVersions=v1 \
      paths=github.com/fluxcd/helm-controller/api/... output:crd:dir="$staging/crds") >>"$log" 2>&1 ||
    { tail -n 40 "$log" >&2; die "generating the HelmRelease CRD failed"; }
  [[ -f "$staging/crds/helm.toolkit.fluxcd.io_helmreleases.yaml" ]] || die "controller-gen wrote no HelmRelease CRD"
  rm -f "$bin"/.helm-controller-crd-*
  rm -rf "$bin/crds/helm-controller"
  mv "$staging/crds" "$bin/crds/helm-controller"
  touch "$bin/$hr_marker"
  note "HelmRelease CRD done"
}

ready source-controller "$sc_marker" ||
  build source-controller "$FLUX_SOURCE_CONTROLLER_VERSION" "$sc_marker"
ready kustomize-controller "$kc_marker" ||
  build kustomize-controller "$FLUX_KUSTOMIZE_CONTROLLER_VERSION" "$kc_marker"
hr_ready || build_helmrelease_crd
note "done in $((SECONDS - start))s"
echo "$bin"
