//! What happens to a detected incident afterwards: a returning problem reopens it within the
//! cooldown (and opens a new one after it), and a severity a person set survives the detector's
//! later updates.

use incident_operator::api::{EntryType, Incident, Phase, Severity};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    detection::{DETECT, DETECTED, FLAGS, signal_count},
    remediation::{deployment, roll_to},
    support::{Operator, TestNamespace, client, install_crds, wait_for, wait_for_all},
};

/// Breaks `checkout`, waits for its incident, fixes it, waits for the auto-resolution; returns the
/// incident's name.
async fn break_and_recover(
    deployments: &Api<Deployment>,
    incidents: &Api<Incident>,
    version: u32,
) -> String {
    let mut broken = deployment(
        "checkout",
        &[&format!("registry.local/checkout:{version}")],
        Some("crashloop"),
    );
    broken.spec.replicas = Some(2);
    roll_to(
        deployments,
        &broken,
        &format!("bad deploy {version}"),
        false,
    )
    .await;
    let open = wait_for_all(incidents, DETECTED, "an open incident", DETECT, |found| {
        found.iter().filter(|i| i.spec.resolution.is_none()).count() == 1
    })
    .await;
    let name = open
        .iter()
        .find(|i| i.spec.resolution.is_none())
        .map(|i| i.name_any())
        .expect("open incident");
    let mut fixed = deployment(
        "checkout",
        &[&format!("registry.local/checkout:{version}.1")],
        None,
    );
    fixed.spec.replicas = Some(2);
    roll_to(deployments, &fixed, &format!("fix {version}"), true).await;
    wait_for(incidents, &name, "auto-resolved", DETECT, |i| {
        i.and_then(|i| i.status.as_ref()).and_then(|s| s.phase) == Some(Phase::Resolved)
    })
    .await;
    name
}

#[tokio::test]
async fn a_returning_problem_reopens_within_the_cooldown_and_opens_anew_after_it() {
    use incident_operator::api::EntryType;
    let client = client().await;
    install_crds(&client).await;
    for (cooldown, reopens) in [("10m", true), ("0s", false)] {
        let ns = TestNamespace::new(&client, "detect-return").await;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
        let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
        deployments
            .create(
                &PostParams::default(),
                &deployment("checkout", &["registry.local/checkout:1"], None),
            )
            .await
            .expect("create Deployment");
        let mut flags = FLAGS.to_vec();
        flags.extend(["--reopen-cooldown", cooldown]);
        let operator = Operator::start(&ns.name, &flags).await;
        let first = break_and_recover(&deployments, &incidents, 2).await;
        let second = break_and_recover(&deployments, &incidents, 3).await;
        let all = incidents
            .list(&ListParams::default().labels(DETECTED))
            .await
            .expect("list");
        if reopens {
            assert_eq!(first, second, "reopened within the cooldown");
            assert_eq!(all.items.len(), 1);
            let incident = incidents.get(&first).await.expect("get");
            let reopened = incident.status.map_or(0, |s| {
                s.timeline
                    .iter()
                    .filter(|e| e.type_ == EntryType::Reopened)
                    .count()
            });
            assert_eq!(reopened, 1, "one Reopened entry");
        } else {
            assert_ne!(first, second, "a new incident after the cooldown");
            assert_eq!(all.items.len(), 2);
        }
        operator.stop().await;
    }
}

#[tokio::test]
async fn a_severity_a_person_set_survives_the_detectors_later_updates() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "detect-severity").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let operator = Operator::start(&ns.name, &FLAGS).await;
    let d = deployment("pull", &["registry.local/pull:1"], Some("imagepull"));
    deployments
        .create(&PostParams::default(), &d)
        .await
        .expect("create Deployment");
    // Opened as P1 and recorded so (a raise before the first reconcile would just open it as P0).
    let found = wait_for_all(&incidents, DETECTED, "the P1 incident", DETECT, |found| {
        found.len() == 1
            && signal_count(&found[0], "ImagePullBackOff") == 3
            && found[0].spec.severity == Severity::P1
            && found[0].status.as_ref().is_some_and(|s| {
                s.timeline
                    .iter()
                    .any(|e| e.type_ == EntryType::Detected && e.message.starts_with("P1 "))
            })
    })
    .await;
    let name = found[0].name_any();

    // The responder raises it, as `kubectl incident severity NAME P0` does.
    let raise = json!({
        "metadata": { "annotations": { "incident.dev/actor": "alice" } },
        "spec": { "severity": "P0" },
    });
    let as_person = PatchParams {
        field_manager: Some("kubectl-incident".into()),
        ..PatchParams::default()
    };
    incidents
        .patch(&name, &as_person, &Patch::Merge(&raise))
        .await
        .expect("raise the severity");

    // The problem grows: the detector rewrites the incident, and keeps the person's severity.
    deployments
        .patch(
            "pull",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 5 } })),
        )
        .await
        .expect("scale up");
    let grown = wait_for(&incidents, &name, "five pods counted", DETECT, |i| {
        i.is_some_and(|i| signal_count(i, "ImagePullBackOff") == 5)
    })
    .await
    .expect("incident");
    assert_eq!(grown.spec.severity, Severity::P0, "{:?}", grown.spec);
    let recorded = wait_for(&incidents, &name, "the raise recorded", DETECT, |i| {
        i.and_then(|i| i.status.as_ref()).is_some_and(|s| {
            s.timeline
                .iter()
                .any(|e| e.type_ == EntryType::SeverityChanged)
        })
    })
    .await
    .expect("incident");
    let changes: Vec<_> = recorded
        .status
        .iter()
        .flat_map(|s| &s.timeline)
        .filter(|e| e.type_ == EntryType::SeverityChanged)
        .map(|e| (e.message.clone(), e.actor.clone()))
        .collect();
    assert_eq!(changes.len(), 1, "one change, by the person: {changes:?}");
    assert_eq!(changes[0].1.as_deref(), Some("alice"), "{changes:?}");
    operator.stop().await;
}
