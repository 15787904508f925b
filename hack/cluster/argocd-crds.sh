#!/usr/bin/env bash
# Copies Argo CD's CRDs (manifests/crds: Application, ApplicationSet, AppProject) from the release's Go module at
# ARGOCD_VERSION (versions.env), downloaded through the module proxy, into a cache outside the repository, for the e2e
# test of pausing an Application (tests/e2e/gitops_argocd.rs). Prints the directory on stdout; a warm cache returns at
# once. `make test` (hack/test.sh) runs it and exports INCIDENT_E2E_ARGOCD_CRDS=<dir>.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
source "$here/lib.sh"

dir="$(cache_root)/argocd/crds-$ARGOCD_VERSION"
if [[ -f "$dir/application-crd.yaml" ]]; then
  echo "$dir"
  exit 0
fi
command -v go >/dev/null || die "go is not on PATH; install Go >= $GO_MIN_VERSION"
module=github.com/argoproj/argo-cd/v3
# Outside any module: `go mod download` fetches and verifies the release's zip against the checksum database. The
# release declares go 1.27, newer than the machine's: the one newer Go the module proxy serves, here only.
src="$(cd "$(mktemp -d)" && GOTOOLCHAIN="$ARGOCD_GOTOOLCHAIN" GOFLAGS=-mod=mod GOWORK=off go mod download -json "$module@$ARGOCD_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -f "$src/manifests/crds/application-crd.yaml" ]] || die "no manifests/crds/application-crd.yaml in $module@$ARGOCD_VERSION"
mkdir -p "$dir.partial"
cp "$src"/manifests/crds/*-crd.yaml "$dir.partial/"
chmod u+w "$dir.partial"/*.yaml
rm -rf "$dir" && mv "$dir.partial" "$dir"
echo "$dir"
