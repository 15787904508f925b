#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok, kwokctl) from source through the Go module proxy, into a cache outside the repository
# keyed by versions.env. A warm cache returns at once. Prints the bin directory on stdout; progress on stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
source "$here/lib.sh"

bin="$(cluster_bin_dir)"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl)
if [[ -f "$bin/.complete" ]]; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH; install Go >= $GO_MIN_VERSION"
have_go="$(go env GOVERSION)"; have_go="${have_go#go}"
if [[ "$(printf '%s\n%s\n' "$GO_MIN_VERSION" "$have_go" | sort -V | head -n1)" != "$GO_MIN_VERSION" ]]; then
  die "Go $have_go is older than the $GO_MIN_VERSION these versions need"
fi

# The modules must build what versions.env names; a stale pin would silently build something else.
grep -q "k8s.io/kubernetes $KUBERNETES_VERSION" "$here/modules/kubernetes/go.mod" &&
  grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$here/modules/etcd/go.mod" &&
  grep -q "sigs.k8s.io/kwok $KWOK_VERSION" "$here/modules/kwok/go.mod" ||
  die "hack/cluster/modules do not match versions.env; run 'make cluster-pin' and commit the result"

staging="$bin.partial"
rm -rf "$staging"; mkdir -p "$staging"
log="$staging/build.log"
start=$SECONDS
note() { printf '[cluster build %4ds] %s\n' "$((SECONDS - start))" "$*" >&2; }

# go_build MODULE_DIR LDFLAGS OUT_ARGS... ; a heartbeat shows progress on a cold build.
go_build() {
  local dir="$1" ldflags="$2"; shift 2
  (cd "$here/modules/$dir" && GOFLAGS=-mod=readonly go build -v -trimpath -ldflags "-s -w $ldflags" "$@") >>"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 20 & wait $! || true
    kill -0 "$pid" 2>/dev/null && note "$dir: $(wc -l <"$log") packages compiled so far"
  done
  wait "$pid" || { tail -n 40 "$log" >&2; die "building $dir failed (full log: $log)"; }
}

minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
kube_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

note "cold build into $bin (this takes many minutes on 2 cores; later runs reuse it)"
note "etcd $ETCD_VERSION"
go_build etcd "-X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}" -o "$staging/etcd" go.etcd.io/etcd/server/v3
note "kwok, kwokctl $KWOK_VERSION"
go_build kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBERNETES_VERSION#v}" \
  -o "$staging/" sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
note "kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $KUBERNETES_VERSION"
go_build kubernetes "$kube_ldflags" -o "$staging/" k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl

for b in "${binaries[@]}"; do [[ -x "$staging/$b" ]] || die "build produced no $b"; done
touch "$staging/.complete"
rm -rf "$bin"; mv "$staging" "$bin"
note "done in $((SECONDS - start))s"
echo "$bin"
