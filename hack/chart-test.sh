#!/usr/bin/env bash
# Chart checks for charts/incident-operator, run by `make test` (and `make chart-test`), in seconds:
#   helm lint (default values, then hack/chart/values-custom.yaml, hack/chart/values-alerts.yaml and
#   hack/chart/values-status-page.yaml), strict;
#   helm template for each value set, compared with the golden files in charts/incident-operator/tests/golden/;
#   value sets the chart must refuse (alerts without a token or without NetworkPolicy peers, and every
#   value values.schema.json refuses) fail with the reason.
# UPDATE_GOLDEN=1 rewrites the golden files instead of comparing (review the diff, then commit).
# helm comes from the cluster cache (hack/cluster/build.sh builds it); INCIDENT_HELM overrides.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

helm="${INCIDENT_HELM:-$(hack/cluster/build.sh)/helm}"
chart=charts/incident-operator
golden="$chart/tests/golden"
custom=hack/chart/values-custom.yaml
alerts=hack/chart/values-alerts.yaml
status_page=hack/chart/values-status-page.yaml
# Helm must not read or write the user's own Helm configuration or repositories.
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
export HELM_CONFIG_HOME="$tmp/config" HELM_CACHE_HOME="$tmp/cache" HELM_DATA_HOME="$tmp/data"

"$helm" lint --strict "$chart" >"$tmp/lint.out" 2>&1 || { cat "$tmp/lint.out" >&2; exit 1; }
"$helm" lint --strict "$chart" -f "$custom" >"$tmp/lint.out" 2>&1 || { cat "$tmp/lint.out" >&2; exit 1; }
"$helm" lint --strict "$chart" -f "$alerts" >"$tmp/lint.out" 2>&1 || { cat "$tmp/lint.out" >&2; exit 1; }
"$helm" lint --strict "$chart" -f "$alerts" --set alerts.tokenSecret.create=true >"$tmp/lint.out" 2>&1 \
  || { cat "$tmp/lint.out" >&2; exit 1; }
"$helm" lint --strict "$chart" -f "$status_page" >"$tmp/lint.out" 2>&1 || { cat "$tmp/lint.out" >&2; exit 1; }

failed=0
render() { # NAME HELM_TEMPLATE_ARGS...
  local name="$1"; shift
  "$helm" template incident-operator "$chart" --namespace incident-operator "$@" >"$tmp/$name.yaml"
  if [[ "${UPDATE_GOLDEN:-}" == 1 ]]; then
    mkdir -p "$golden"; cp "$tmp/$name.yaml" "$golden/$name.yaml"
    echo "chart-test: rewrote $golden/$name.yaml" >&2
  elif ! diff -u "$golden/$name.yaml" "$tmp/$name.yaml" >&2; then
    echo "chart-test: helm template ($name) differs from $golden/$name.yaml; if intended, run UPDATE_GOLDEN=1 hack/chart-test.sh" >&2
    failed=1
  fi
}
refuse() { # REASON HELM_TEMPLATE_ARGS...: rendering must fail and say REASON
  local reason="$1"; shift
  if "$helm" template incident-operator "$chart" --namespace incident-operator "$@" >/dev/null 2>"$tmp/refused"; then
    echo "chart-test: helm template $* rendered; it must fail with: $reason" >&2; failed=1
  elif ! grep -qF -- "$reason" "$tmp/refused"; then
    echo "chart-test: helm template $* failed without saying \"$reason\":" >&2; cat "$tmp/refused" >&2; failed=1
  fi
}
render default
# deploy/admission-policies.yaml: the chart's admission policies for installs without Helm (release
# incident-operator in namespace incident-operator, every namespace), kept equal to the chart.
"$helm" template incident-operator "$chart" --namespace incident-operator \
  --show-only templates/admission.yaml >"$tmp/admission.yaml"
if [[ "${UPDATE_GOLDEN:-}" == 1 ]]; then
  cp "$tmp/admission.yaml" deploy/admission-policies.yaml
elif ! diff -u deploy/admission-policies.yaml "$tmp/admission.yaml" >&2; then
  echo "chart-test: deploy/admission-policies.yaml differs from the chart; run UPDATE_GOLDEN=1 hack/chart-test.sh" >&2
  failed=1
fi
render custom -f "$custom"
render alerts -f "$alerts"
render status-page -f "$status_page"
render sharded --set sharding.shards=2 --set sharding.namespaceSelector=incident.dev/managed=true
refuse "statusPage.enabled needs statusPage.page" --set statusPage.enabled=true
refuse "statusPage.port must differ" -f "$status_page" --set statusPage.port=8080
refuse "is outside operator.watchNamespace" -f "$status_page" --set operator.watchNamespace=payments
refuse "statusPage.ingress.enabled needs statusPage.ingress.host" -f "$status_page" --set statusPage.ingress.host=
refuse "at '/statusPage/page'" --set statusPage.page=Shop
refuse "alerts.enabled needs a bearer token" --set alerts.enabled=true
refuse "networkPolicy.alertsIngress must name who may post alerts" -f "$alerts" --set-json networkPolicy.alertsIngress=[]
refuse "alerts.port must differ from operator.port" -f "$alerts" --set alerts.port=8080
refuse "outside operator.watchNamespace" -f "$alerts" --set operator.watchNamespace=shop
# values.schema.json names the bad value (issue 17): numbers, ports, names, durations, a dropped config.
refuse "at '/replicaCount': minimum" --set replicaCount=-1
refuse "at '/replicaCount': got string, want integer" --set replicaCount=two
refuse "at '/replicaCount'" --set-json replicaCount=1.5
refuse "at '/image/repository': minLength" --set image.repository=
refuse "at '/operator/port': maximum" --set operator.port=70000
refuse "at '/operator/watchNamespace'" --set 'operator.watchNamespace=Bad_NS!'
refuse "missing property 'config'" --set config=null
refuse "at '/leaderElection/leaseDuration'" --set 'leaderElection.leaseDuration=5 minutes'
refuse "additional properties 'replicas' not allowed" --set replicas=3
refuse "at '/sharding/shards': minimum" --set sharding.shards=0
refuse "cannot be combined with operator.watchNamespace" --set sharding.shards=2 --set operator.watchNamespace=shop
refuse "at '/flowControl/lendablePercent': maximum" --set flowControl.lendablePercent=150
refuse "flowControl.handSize must not exceed flowControl.queues" --set flowControl.queues=4 --set flowControl.handSize=6
refuse "argoRollouts.enabled needs argoRollouts.namespaces" --set argoRollouts.enabled=true
[[ "$failed" == 0 ]] || exit 1
echo "chart-test: helm lint and golden templates OK" >&2
