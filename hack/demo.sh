#!/usr/bin/env bash
# The one-command demo (`make demo`): a local cluster, the CRDs and example runbooks, the operator,
# a sample app, a broken rollout, and the story as it happens: incident detected → runbook rolls back
# → recovered → resolved, with the notifications a signed webhook Channel sends to a local receiver
# (the primary on call paged by the namespace's escalation policy among them).
# Then the incident as people see it and its post-mortem draft.
#   make demo                 uses the running local cluster, or starts one
#   QUICK=1 hack/demo.sh      shorter clocks (what the tests run)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
source "$here/cluster/versions.env"
source "$here/cluster/lib.sh"
cd "$root"

quick="${QUICK:-}"
ns=demo-shop
resolve_after=$([[ -n "$quick" ]] && echo 3s || echo 20s)
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
bin="$("$here/cluster/build.sh")"
kubectl=("$bin/kubectl" --kubeconfig "$KUBECONFIG_PATH")

pids=()
trap 'for pid in ${pids[@]+"${pids[@]}"}; do kill "$pid" 2>/dev/null || true; done' EXIT

# Waits until COMMAND prints something non-empty (or fails the demo after SECONDS).
await() {
  local what="$1" seconds="$2"; shift 2
  local deadline=$((SECONDS + seconds)) out
  until out="$("$@" 2>/dev/null)" && [[ -n "$out" ]]; do
    (( SECONDS < deadline )) || die "timed out after ${seconds}s waiting for: $what"
    sleep 0.5
  done
  printf '%s\n' "$out"
}

if ! "${kubectl[@]}" get --raw /readyz >/dev/null 2>&1; then
  say "Starting the local cluster (make cluster)"
  "$here/cluster/up.sh"
fi

say "Building the operator and the kubectl plugin"
cargo build --quiet --bins
target_dir="${CARGO_TARGET_DIR:-$root/target}"
operator="$target_dir/debug/incident-operator"
plugin="$target_dir/debug/kubectl-incident"

say "Installing the CRDs and the example runbooks into namespace $ns"
# Forced: this checkout's CRDs win over whatever applied them before (a benchmark, another checkout).
"${kubectl[@]}" apply --server-side --force-conflicts -f crds/ >/dev/null
"${kubectl[@]}" wait --for condition=Established \
  crd/incidents.incident.dev crd/runbooks.incident.dev crd/channels.incident.dev \
  crd/oncallschedules.incident.dev crd/escalationpolicies.incident.dev >/dev/null
"${kubectl[@]}" delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
"${kubectl[@]}" create namespace "$ns" >/dev/null
"${kubectl[@]}" -n "$ns" apply -f examples/runbooks/ >/dev/null
"${kubectl[@]}" -n "$ns" get runbooks

say "Starting a webhook receiver on 127.0.0.1 and a signed Channel to it"
# The e2e tests' receiver: it checks each request's Standard Webhooks signature with the
# `standardwebhooks` package (not our code) and lists what arrived on GET /received.
python="${INCIDENT_E2E_PYTHON:-$("$here/python-env.sh")}"
receiver_log="$CLUSTER_DIR/demo-receiver.log"
signing_key="whsec_$(head -c 24 /dev/urandom | base64)"
"$python" tests/e2e/receivers/webhook_receiver.py --secret "$signing_key" >"$receiver_log" 2>&1 &
pids+=("$!")
receiver_port="$(await "the webhook receiver to listen" 20 sed -n 's/^listening //p' "$receiver_log")"
"${kubectl[@]}" -n "$ns" create secret generic demo-hook >/dev/null \
  --from-literal=url="http://127.0.0.1:$receiver_port/hook" --from-literal=key="$signing_key"
"${kubectl[@]}" -n "$ns" apply -f - >/dev/null <<'YAML'
apiVersion: incident.dev/v1alpha1
kind: Channel
metadata:
  name: demo-hook
spec:
  description: The demo's local webhook receiver; every event, signed.
  webhook:
    url: { name: demo-hook, key: url }
    signingKey: { name: demo-hook, key: key }
YAML
echo "receiver on 127.0.0.1:$receiver_port (log $receiver_log), Channel demo-hook (Secret demo-hook)"

say "Who answers: an on-call schedule and the namespace's escalation policy"
"${kubectl[@]}" -n "$ns" apply -f - >/dev/null <<'YAML'
apiVersion: incident.dev/v1alpha1
kind: OnCallSchedule
metadata:
  name: demo
spec:
  timeZone: UTC
  members:
    - { name: ana, contacts: { webhook: "+15550100" } }
    - { name: bo, contacts: { webhook: "+15550101" } }
  layers:
    - { name: primary, members: [ana, bo], start: "2026-01-05" }
    - { name: secondary, members: [bo, ana], start: "2026-01-05" }
---
apiVersion: incident.dev/v1alpha1
kind: EscalationPolicy
metadata:
  name: demo
spec:
  default: true
  levels:
    - name: primary
      notify: [ { layer: { schedule: demo, layer: primary } } ]
    - name: secondary
      notify: [ { layer: { schedule: demo, layer: secondary } } ]
YAML
"$plugin" --kubeconfig "$KUBECONFIG_PATH" -n "$ns" oncall --handoffs 0

# Prints the receiver's EVENT message about the incident (event, whether its signature verified,
# its text), or nothing while it has not arrived; with EVENT "all", one line listing every message.
message() {
  "$python" - "$receiver_port" "$incident" "$1" <<'PY'
import json, sys, urllib.request
port, incident, event = sys.argv[1:4]
with urllib.request.urlopen(f"http://127.0.0.1:{port}/received", timeout=5) as answer:
    received = json.load(answer)
mine = [r for r in received if (r.get("body") or {}).get("incident", {}).get("name") == incident]
if event == "all":
    events = ", ".join(r["body"].get("event", "?") for r in mine)
    verified = sum(r.get("verified") is True for r in mine)
    print(f"  the receiver got {len(mine)} messages about it ({events}), {verified} verified")
for r in mine:
    if r["body"].get("event") == event:
        verified = "yes" if r.get("verified") is True else f"no ({r.get('verifyError')})"
        print(f"  message received: {event}, signature verified: {verified}")
        print("\n".join("  | " + line for line in r["body"].get("text", "").splitlines()))
        break
PY
}
# Waits for the incident's EVENT message at the receiver and shows it; fails the demo without it.
show_message() {
  local out
  out="$(await "the $1 message at the webhook receiver (its log $receiver_log, the operator's $log; \
kubectl -n $ns describe channel demo-hook)" 60 message "$1")"
  printf '%s\n' "$out"
  grep -q "signature verified: yes" <<<"$out" || die "the $1 message's signature did not verify"
}

say "Starting the operator (detection on, auto-resolve after $resolve_after)"
log="$CLUSTER_DIR/demo-operator.log"
"$operator" run --kubeconfig "$KUBECONFIG_PATH" --http-addr 127.0.0.1:0 --namespace "$ns" \
  --resolve-after "$resolve_after" >"$log" 2>&1 &
operator_pid=$!
pids+=("$operator_pid")
echo "operator pid $operator_pid, log $log"
"${kubectl[@]}" -n "$ns" wait --for condition=Ready channel/demo-hook --timeout=60s >/dev/null

say "Deploying the sample app: checkout v1, 4 replicas"
"${kubectl[@]}" -n "$ns" create deployment checkout --image=registry.local/checkout:1 --replicas=4 >/dev/null
"${kubectl[@]}" -n "$ns" rollout status deployment/checkout --timeout=120s

say "Rolling out checkout v2, which crash-loops"
"${kubectl[@]}" -n "$ns" patch deployment checkout --type merge -p \
  '{"metadata":{"annotations":{"kubernetes.io/change-cause":"deploy v2"}},"spec":{"template":{"metadata":{"labels":{"incident.dev/fault":"crashloop"}},"spec":{"containers":[{"name":"checkout","image":"registry.local/checkout:2"}]}}}}' >/dev/null

incident="$(await "the incident" 120 "${kubectl[@]}" -n "$ns" get incidents \
  -l incident.dev/source=detector,incident.dev/problem=workload -o jsonpath='{.items[0].metadata.name}')"
jp() { "${kubectl[@]}" -n "$ns" get incident "$incident" -o jsonpath="$1"; }
say "Incident detected: $incident"
echo "  $(jp '{.spec.severity}'): $(jp '{.spec.title}')"
await "the runbook" 60 jp '{.status.runbook.name}' | sed 's/^/  following runbook /'
show_message Opened
show_message Paged

await "the rollback" 120 jp '{.status.runbook.progress[?(@.name=="roll-back")].action}' >/dev/null
say "The runbook is rolling deployment/checkout back"
await "the rollback to finish" 180 \
  jp '{.status.actions[?(@.phase=="Succeeded")].name}' | sed 's/^/  action succeeded: /'
"${kubectl[@]}" -n "$ns" rollout status deployment/checkout --timeout=120s >/dev/null
say "Recovered: checkout runs $("${kubectl[@]}" -n "$ns" get deployment checkout -o jsonpath='{.spec.template.spec.containers[0].image}') again"

await "the resolution" 240 bash -c "[[ \"\$(\"\$0\" \"\${@}\")\" == Resolved ]] && echo Resolved" \
  "${kubectl[@]}" -n "$ns" get incident "$incident" -o jsonpath='{.status.phase}' >/dev/null
say "Resolved: $(jp '{.spec.resolution.summary}')"
show_message Resolved
message all

say "kubectl incident show $incident"
"$plugin" --kubeconfig "$KUBECONFIG_PATH" -n "$ns" show "$incident"

say "kubectl incident postmortem $incident"
"$plugin" --kubeconfig "$KUBECONFIG_PATH" -n "$ns" postmortem "$incident"

say "Explore"
cat <<MSG
  export KUBECONFIG=$KUBECONFIG_PATH PATH=$bin:$target_dir/debug:\$PATH
  kubectl -n $ns get incidents,runbooks,channels
  kubectl incident -n $ns list
  kubectl incident -n $ns oncall
  kubectl -n $ns get incident $incident -o yaml
The operator and the webhook receiver stop with this script. Remove the cluster with: make cluster-down
MSG
