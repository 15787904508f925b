#!/usr/bin/env bash
# Idle API traffic (issue 20): INCIDENTS open incidents (default 100) on a healthy Deployment, the
# release operator watching their namespace; once settled, every request it sends for WINDOW seconds
# (default 300) is counted twice: by the operator's own counter (incident_operator_api_requests_total,
# by verb and resource) and by the API server (apiserver_request_total for the operator's resources,
# all clients). Watches are not counted (they stay open). Needs `make cluster`.
#   hack/bench-idle.sh            INCIDENTS=100 WINDOW=300 SETTLE=30
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
incidents="${INCIDENTS:-100}" window="${WINDOW:-300}" settle="${SETTLE:-30}"
export KUBECONFIG="$root/.cluster/kubeconfig"
kubectl="$(hack/cluster/build.sh)/kubectl"
ns="bench-idle-$$"
cargo build --release --quiet --bin incident-operator
binary="${CARGO_TARGET_DIR:-$root/target}/release/incident-operator"
port=$((20000 + $$ % 20000))
cleanup() { [[ -n "${pid:-}" ]] && kill "$pid" 2>/dev/null; "$kubectl" delete ns "$ns" --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$kubectl" create ns "$ns" >/dev/null
"$kubectl" apply --server-side --field-manager incident-bench --force-conflicts -f crds/ >/dev/null
"$kubectl" -n "$ns" create deployment web --image=registry.local/web:1 --replicas=2 >/dev/null
"$kubectl" -n "$ns" rollout status deployment/web --timeout=120s >/dev/null
for i in $(seq 1 "$incidents"); do
  printf -- '---\napiVersion: incident.dev/v1alpha1\nkind: Incident\nmetadata: {name: slow-%s}\nspec: {title: "Web is slow %s", severity: P2, affected: [{kind: Deployment, name: web}]}\n' "$i" "$i"
done | "$kubectl" -n "$ns" apply -f - >/dev/null
RUST_LOG=warn "$binary" run --http-addr "127.0.0.1:$port" --namespace "$ns" --detection false &
pid=$!
until [[ "$("$kubectl" -n "$ns" get incidents -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c '^Detected$')" == "$incidents" ]]; do sleep 1; done
sleep "$settle"
ours() { curl -fsS "127.0.0.1:$port/metrics" | grep '^incident_operator_api_requests_total{' | grep -v 'verb="watch"' || true; }
server() { "$kubectl" get --raw /metrics | grep '^apiserver_request_total{' \
  | grep -E 'resource="(incidents|runbooks|deployments|replicasets|statefulsets|daemonsets|events|pods)"' \
  | grep -v 'verb="WATCH"' | sed -E 's/,?code="[0-9]+"//; s/,?component="[a-z]+"//; s/,?dry_run="[^"]*"//' \
  | awk '{k=$1; sub(/ [0-9.e+]+$/, "", k); s[k]+=$2} END {for (k in s) print k, s[k]}' | sort; }
ours >"/tmp/$ns.ours.0"; server >"/tmp/$ns.server.0"
rss0=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
sleep "$window"
ours >"/tmp/$ns.ours.1"; server >"/tmp/$ns.server.1"
delta() { join -a2 -e 0 -o '0,1.2,2.2' <(sed 's/ /\t/' "$1" | sort | tr '\t' ' ') <(sed 's/ /\t/' "$2" | sort | tr '\t' ' ') \
  | awk '$3 - $2 > 0 {printf "  %s +%d\n", $1, $3 - $2; n++} END {if (!n) print "  (none)"}'; }
echo "bench-idle: $incidents open incidents, ${window}s after ${settle}s settle (commit $(git rev-parse --short HEAD))"
echo "operator's own requests (verb, resource; watches excluded):"; delta "/tmp/$ns.ours.0" "/tmp/$ns.ours.1"
echo "API server, every client, the operator's resources (watches excluded):"; delta "/tmp/$ns.server.0" "/tmp/$ns.server.1"
echo "operator RSS: ${rss0} kB at the start of the window, $(awk '/VmRSS/ {print $2}' "/proc/$pid/status") kB at its end"
rm -f /tmp/"$ns".*
