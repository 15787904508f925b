//! Detection configured by file: a namespace selector keeps unselected namespaces quiet until
//! they are selected, and a Warning Event configured as a signal opens an incident with it as
//! evidence.

use incident_operator::api::{Incident, Severity};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{ListParams, PostParams},
};
use serde_json::json;

use crate::{
    detection::{DETECT, DETECTED, FLAGS, signal_count, unschedulable},
    remediation::deployment,
    support::{Operator, TestNamespace, client, install_crds, wait_for, wait_for_all},
};

/// Writes a configuration file for one test's operator.
fn config_file(test: &str, yaml: &str) -> String {
    let path =
        std::env::temp_dir().join(format!("incident-e2e-{test}-{}.yaml", std::process::id()));
    std::fs::write(&path, yaml).expect("write config file");
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn a_namespace_outside_the_selector_produces_nothing_until_it_is_selected() {
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use kube::api::{Patch, PatchParams};

    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "detect-scope").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let config = config_file(
        "scope",
        &format!(
            "detection:\n  namespaceSelector:\n    matchLabels: {{ incident.dev/e2e-detect: {} }}\n",
            ns.name
        ),
    );
    let mut flags = FLAGS.to_vec();
    flags.extend(["--config", config.as_str()]);
    let operator = Operator::start(&ns.name, &flags).await;

    let mut broken = deployment("web", &["registry.local/web:2"], Some("crashloop"));
    broken.spec.replicas = Some(2);
    deployments
        .create(&PostParams::default(), &broken)
        .await
        .expect("create Deployment");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    wait_for_all(
        &pods,
        "app=web",
        "both pods crash-looping",
        DETECT,
        |pods| {
            pods.len() == 2
                && pods.iter().all(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .and_then(|cs| cs.first())
                        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
                        .as_deref()
                        == Some("CrashLoopBackOff")
                })
        },
    )
    .await;
    // A pass after the pods crash-looped, and still nothing: the namespace is not selected.
    let series = "incident_operator_detection_passes_total";
    let seen = operator.metric(series).await.unwrap_or(0.0);
    operator
        .await_metric(series, |v| v.unwrap_or(0.0) > seen)
        .await;
    let detected = incidents
        .list(&ListParams::default().labels(DETECTED))
        .await
        .expect("list");
    assert!(
        detected.items.is_empty(),
        "the namespace is outside the selector: {:#?}",
        detected.items
    );

    // Selecting the namespace makes the same problem count.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let label = json!({ "metadata": { "labels": { "incident.dev/e2e-detect": ns.name } } });
    namespaces
        .patch(&ns.name, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label the namespace");
    wait_for_all(
        &incidents,
        DETECTED,
        "an incident once the namespace is selected",
        DETECT,
        |found| found.len() == 1 && signal_count(&found[0], "CrashLoopBackOff") == 2,
    )
    .await;
    operator.stop().await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_warning_event_configured_as_a_signal_opens_an_incident_with_it_as_evidence() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "detect-events").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    // The scheduler's FailedScheduling counts at once; neither the pending grace nor the
    // Deployment's unavailability could open the incident within this test.
    let config = config_file(
        "events",
        "detection:\n  warningEvents:\n    signals: [FailedScheduling]\n  severity:\n    allReplicasUnavailable: P0\n",
    );
    let mut flags = FLAGS.to_vec();
    flags.extend([
        "--config",
        config.as_str(),
        "--pending-grace",
        "1h",
        "--unavailable-for",
        "1h",
    ]);
    let operator = Operator::start(&ns.name, &flags).await;

    let stuck = unschedulable("batch");
    deployments
        .create(&PostParams::default(), &stuck)
        .await
        .expect("create Deployment");

    let found = wait_for_all(
        &incidents,
        DETECTED,
        "one incident from the FailedScheduling event",
        DETECT,
        |found| found.len() == 1 && signal_count(&found[0], "FailedScheduling") == 1,
    )
    .await;
    let incident = &found[0];
    assert!(
        incident
            .spec
            .signals
            .iter()
            .all(|s| s.type_ == "FailedScheduling"),
        "only the event signal: {:#?}",
        incident.spec.signals
    );
    assert_eq!(
        incident.spec.severity,
        Severity::P0,
        "the configured severity"
    );
    let name = incident.name_any();
    let with_events = wait_for(
        &incidents,
        &name,
        "the event in the evidence",
        DETECT,
        |i| {
            i.and_then(|i| i.status.as_ref())
                .and_then(|s| s.evidence.as_ref())
                .is_some_and(|e| e.events.iter().any(|e| e.reason == "FailedScheduling"))
        },
    )
    .await
    .expect("Incident");
    let evidence = with_events
        .status
        .and_then(|s| s.evidence)
        .expect("evidence");
    let event = &evidence.events[0];
    assert!(event.object.starts_with("pod/batch-"), "{event:#?}");
    assert!(
        event.note.as_deref().unwrap_or_default().contains("node"),
        "the scheduler's explanation: {event:#?}"
    );
    operator.stop().await;
    let _ = std::fs::remove_file(config);
}
