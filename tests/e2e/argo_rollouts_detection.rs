//! Argo Rollouts from detection to resolution, with the real controller: a canary that
//! crash-loops is detected as trouble of the Rollout (its ReplicaSet's owner), not of an unnamed
//! ReplicaSet; a runbook's automatic rollback aborts it; the controller scales the canary down;
//! the signals clear and the incident resolves itself.

use incident_operator::api::{ActionPhase, AffectedKind, Incident, Phase, Runbook};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::{
    argo_rollouts::{Controller, Rollout, argo_dir, install_argo_crds, observed, rollout, status},
    detection::{DETECT, DETECTED, FLAGS},
    remediation::action,
    support::{Operator, TestNamespace, client, install_crds, wait_for, wait_for_all},
};

#[tokio::test]
async fn a_crash_looping_canary_is_the_rollouts_incident_and_its_abort_resolves_it() {
    let dir = argo_dir();
    let client = client().await;
    install_crds(&client).await;
    install_argo_crds(&client, &dir).await;
    let ns = TestNamespace::new(&client, "argo-detect").await;
    let ns = ns.name.clone();
    let _controller = Controller::start(&dir, &ns).await;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns);
    let apply = |body: serde_json::Value| {
        let rollouts = rollouts.clone();
        async move {
            rollouts
                .patch(
                    "shop",
                    &PatchParams::apply("e2e").force(),
                    &Patch::Apply(&body),
                )
                .await
                .expect("apply the Rollout")
        }
    };
    apply(rollout("shop", "registry.local/shop:1")).await;
    wait_for(&rollouts, "shop", "Healthy at :1", DETECT, |r| {
        r.is_some_and(|r| observed(r) && status(r).phase.as_deref() == Some("Healthy"))
    })
    .await;

    let runbooks: Api<Runbook> = Api::namespaced(client.clone(), &ns);
    let runbook = json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Runbook",
        "metadata": { "name": "abort-crashing-canary" },
        "spec": { "match": { "signals": ["CrashLoopBackOff"] },
                  "steps": [
                      { "name": "roll-back", "rollback": {}, "automaticFor": ["P1", "P2", "P3"] },
                      { "name": "confirm-recovery",
                        "verify": { "timeout": "5m", "signalsClearedFor": "2s" } } ] },
    });
    runbooks
        .patch(
            "abort-crashing-canary",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&runbook),
        )
        .await
        .expect("apply the Runbook");
    let operator = Operator::start(&ns, &FLAGS).await;

    // v2's canary crash-loops (the kwok fault label on its pod template).
    let mut broken = rollout("shop", "registry.local/shop:2");
    broken["spec"]["template"]["metadata"]["labels"]["incident.dev/fault"] = json!("crashloop");
    apply(broken).await;

    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let found = wait_for_all(
        &incidents,
        DETECTED,
        "the Rollout's incident, aborted by the runbook and resolved",
        DETECT,
        |found| {
            found.len() == 1
                && found[0].status.as_ref().and_then(|s| s.phase) == Some(Phase::Resolved)
        },
    )
    .await;
    operator.stop().await;
    let incident = &found[0];
    let affected: Vec<_> = incident
        .spec
        .affected
        .iter()
        .map(|a| (a.kind, a.name.as_str()))
        .collect();
    assert_eq!(affected, [(AffectedKind::Rollout, "shop")]);
    assert!(
        incident
            .spec
            .title
            .starts_with("rollout/shop: CrashLoopBackOff"),
        "{}",
        incident.spec.title
    );
    let aborted = action(incident, "runbook-roll-back").expect("the runbook's action");
    assert_eq!(aborted.phase, ActionPhase::Succeeded, "{aborted:#?}");
    assert_eq!(aborted.target(), "rollout/shop");
    let shop = rollouts.get("shop").await.expect("get shop");
    let s = status(&shop);
    assert_eq!(
        (s.abort, s.phase.as_deref()),
        (Some(true), Some("Degraded"))
    );
    assert_eq!(s.available_replicas, Some(4), "{s:#?}");
}
