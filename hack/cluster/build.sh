#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok, kwokctl) and helm from source through the Go module proxy, into a cache outside the
# repository keyed by versions.env. A warm cache returns at once. Prints the bin directory on stdout;
# progress on stderr.
#
# The bin directory is keyed by the control-plane versions only; helm is added to it separately (its own
# marker file .helm-$HELM_VERSION), so adding or bumping helm builds helm alone (about two minutes) and
# never the whole control plane again. Both steps are atomic: a control-plane build happens in a
# .partial directory renamed into place, helm is built beside it and renamed onto bin/helm.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
source "$here/lib.sh"

bin="$(cluster_bin_dir)"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl)
if [[ -f "$bin/.complete" && -f "$bin/.helm-$HELM_VERSION" && -x "$bin/helm" ]]; then
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
  grep -q "sigs.k8s.io/kwok $KWOK_VERSION" "$here/modules/kwok/go.mod" &&
  grep -q "helm.sh/helm/v3 $HELM_VERSION" "$here/modules/helm/go.mod" ||
  die "hack/cluster/modules do not match versions.env; run 'make cluster-pin' and commit the result"

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

build_control_plane() {
  staging="$bin.partial"
  rm -rf "$staging"; mkdir -p "$staging"
  log="$staging/build.log"
  minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
  kube_ldflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kube_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done

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
}

# helm, into the finished bin directory: built beside it, then renamed onto bin/helm (atomic), then marked.
build_helm() {
  staging="$bin.helm-partial"
  rm -rf "$staging"; mkdir -p "$staging"
  log="$staging/build.log"
  local k8s_minor
  k8s_minor="$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$here/modules/helm/go.mod" | head -n1)"
  [[ -n "$k8s_minor" ]] || die "cannot tell which k8s.io/client-go helm builds with"
  note "helm $HELM_VERSION"
  local h=helm.sh/helm/v3
  go_build helm "-X $h/internal/version.version=$HELM_VERSION -X $h/internal/version.gitTreeState=clean \
 -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=$k8s_minor \
 -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=$k8s_minor" \
    -o "$staging/helm" $h/cmd/helm
  [[ -x "$staging/helm" ]] || die "build produced no helm"
  rm -f "$bin"/.helm-*
  mv "$staging/helm" "$bin/helm"
  cat "$log" >>"$bin/build.log"
  rm -rf "$staging"
  touch "$bin/.helm-$HELM_VERSION"
}

if [[ ! -f "$bin/.complete" ]]; then
  note "cold build into $bin (this takes many minutes on 2 cores; later runs reuse it)"
  build_control_plane
fi
if [[ ! -f "$bin/.helm-$HELM_VERSION" || ! -x "$bin/helm" ]]; then
  build_helm
fi
note "done in $((SECONDS - start))s"
echo "$bin"
