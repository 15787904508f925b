//! Runbooks driving incidents against the real control plane: the GitOps flow (detect → collect →
//! roll back automatically → verify → resolved), the approval gate and its escalation, edits that
//! never change a run in progress, and a `when` that skips a rollback.

use std::time::Duration;

use incident_operator::api::{EntryType, Incident, Phase, Runbook, StepPhase};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use crate::{
    remediation::{create_rolled_out, deployment, images, roll_to},
    support::{Operator, TestNamespace, client, install_crds, wait_for, wait_for_all},
};

const WAIT: Duration = Duration::from_secs(120);

/// Applies a runbook (server-side, as GitOps would).
async fn apply_runbook(runbooks: &Api<Runbook>, runbook: Value) -> Runbook {
    let name = runbook["metadata"]["name"]
        .as_str()
        .expect("runbook name")
        .to_owned();
    runbooks
        .patch(
            &name,
            &PatchParams::apply("e2e-gitops").force(),
            &Patch::Apply(&runbook),
        )
        .await
        .expect("apply Runbook")
}

fn entries(incident: &Incident) -> Vec<(EntryType, String)> {
    incident
        .status
        .as_ref()
        .map(|s| {
            s.timeline
                .iter()
                .map(|e| (e.type_, e.message.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The phase of a runbook step on the incident, if the run has it.
pub fn step_phase(incident: &Incident, step: &str) -> Option<StepPhase> {
    incident
        .status
        .as_ref()?
        .runbook
        .as_ref()?
        .progress
        .iter()
        .find(|p| p.name == step)
        .map(|p| p.phase)
}

/// Deploys `name` v1 (healthy, `replicas`) and waits until it is rolled out.
async fn healthy(deployments: &Api<Deployment>, name: &str, replicas: i32) -> Deployment {
    let mut good = deployment(name, &[&format!("registry.local/{name}:1")], None);
    good.spec.replicas = Some(replicas);
    create_rolled_out(deployments, &good, WAIT).await
}

#[tokio::test]
async fn gitops_runbook_rolls_back_a_crash_looping_deploy_and_the_incident_resolves() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "rb-gitops").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let runbooks: Api<Runbook> = Api::namespaced(client.clone(), &ns.name);
    // The example runbook as GitOps would apply it, with the verification's quiet period short.
    let mut example: Value = serde_yaml_ng::from_str(include_str!(
        "../../examples/runbooks/crashloop-after-deploy.yaml"
    ))
    .expect("example runbook");
    example["spec"]["steps"][2]["verify"]["signalsClearedFor"] = json!("2s");
    apply_runbook(&runbooks, example).await;
    let operator =
        Operator::start(&ns.name, &["--detection", "true", "--resolve-after", "2s"]).await;

    healthy(&deployments, "shop", 4).await;
    // v2 crash-loops; the rolling update keeps most of v1 serving, so the incident is P2/P3.
    let mut broken = deployment("shop", &["registry.local/shop:2"], Some("crashloop"));
    broken.spec.replicas = Some(4);
    roll_to(&deployments, &broken, "deploy v2", false).await;

    let found = wait_for_all(
        &incidents,
        "incident.dev/source=detector,incident.dev/problem=workload",
        "the detected incident resolved after the runbook ran",
        WAIT,
        |found| {
            found.len() == 1
                && found[0]
                    .spec
                    .resolution
                    .as_ref()
                    .is_some_and(|r| r.summary == "Signals cleared")
                && step_phase(&found[0], "confirm-recovery") == Some(StepPhase::Succeeded)
                && found[0].status.as_ref().and_then(|s| s.phase) == Some(Phase::Resolved)
        },
    )
    .await;
    let incident = &found[0];
    let run = incident
        .status
        .as_ref()
        .and_then(|s| s.runbook.as_ref())
        .expect("runbook run");
    assert_eq!(run.name, "crashloop-after-deploy");
    assert_eq!(run.generation, 1);
    for step in ["gather-evidence", "roll-back", "confirm-recovery"] {
        assert_eq!(
            step_phase(incident, step),
            Some(StepPhase::Succeeded),
            "{step}: {run:#?}"
        );
    }
    let gathered = run.progress[0]
        .evidence
        .as_ref()
        .expect("collected evidence");
    assert!(!gathered.rollout_history.is_empty(), "{gathered:#?}");
    assert!(
        gathered.logs.is_some(),
        "the crashed container's log: {gathered:#?}"
    );
    assert_eq!(run.progress[1].action.as_deref(), Some("runbook-roll-back"));

    // The Deployment is back on v1's template, through exactly one rollback action.
    let shop = deployments.get("shop").await.expect("get");
    assert_eq!(images(&shop), ["registry.local/shop:1"]);
    assert_eq!(
        incident.spec.actions.len(),
        1,
        "{:#?}",
        incident.spec.actions
    );

    // The timeline tells the story in order.
    let story: Vec<EntryType> = entries(incident).into_iter().map(|(t, _)| t).collect();
    let expected = [
        EntryType::Detected,
        EntryType::RunbookSelected,
        EntryType::StepSucceeded,
        EntryType::StepStarted,
        EntryType::ActionRequested,
        EntryType::ActionSucceeded,
        EntryType::StepSucceeded,
        EntryType::StepSucceeded,
        EntryType::RunbookCompleted,
        EntryType::Resolved,
    ];
    let mut rest = story.iter();
    for want in expected {
        assert!(
            rest.any(|t| *t == want),
            "{want:?} missing or out of order in {:#?}",
            entries(incident)
        );
    }
    operator.stop().await;
}

#[tokio::test]
async fn a_p1_rollback_waits_for_approval_escalates_when_late_and_runs_once_approved() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "rb-approval").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let runbooks: Api<Runbook> = Api::namespaced(client.clone(), &ns.name);
    apply_runbook(
        &runbooks,
        json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Runbook",
            "metadata": { "name": "careful-rollback" },
            "spec": {
                "severity": "P1",
                "match": { "incidentSelector": { "matchLabels": { "service": "payments" } } },
                "steps": [
                    { "name": "roll-back", "rollback": {}, "automaticFor": ["P3"] },
                    { "name": "confirm", "verify": { "timeout": "2m" } },
                ],
            },
        }),
    )
    .await;
    // The runbook raises the incident to P1, whose approval must come within 3s here.
    let operator = Operator::start(&ns.name, &["--response-time", "P1=3s"]).await;
    healthy(&deployments, "payments", 2).await;
    let mut broken = deployment(
        "payments",
        &["registry.local/payments:2"],
        Some("crashloop"),
    );
    broken.spec.replicas = Some(2);
    roll_to(&deployments, &broken, "deploy v2", false).await;

    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": "payments-down", "labels": { "service": "payments" } },
        "spec": { "title": "Payments failing after v2", "severity": "P2",
                  "affected": [{ "kind": "Deployment", "name": "payments" }] },
    }))
    .expect("Incident");
    incidents
        .create(&PostParams::default(), &incident)
        .await
        .expect("create Incident");

    let escalated = wait_for(
        &incidents,
        "payments-down",
        "the waiting rollback escalated past the response time",
        WAIT,
        |i| {
            i.is_some_and(|i| {
                step_phase(i, "roll-back") == Some(StepPhase::WaitingApproval)
                    && entries(i)
                        .iter()
                        .any(|(t, _)| *t == EntryType::RunbookEscalated)
            })
        },
    )
    .await
    .expect("Incident");
    // The runbook raised the severity, and says so.
    assert_eq!(
        escalated.spec.severity,
        incident_operator::api::Severity::P1
    );
    assert!(
        entries(&escalated)
            .iter()
            .any(|(t, m)| *t == EntryType::RunbookSelected
                && m.contains("severity set from P2 to P1 by the runbook")),
        "{:#?}",
        entries(&escalated)
    );
    assert_eq!(
        escalated
            .annotations()
            .get("incident.dev/severity-override")
            .map(String::as_str),
        Some("runbook/careful-rollback")
    );
    assert!(
        escalated.spec.actions.is_empty(),
        "nothing runs without approval: {:#?}",
        escalated.spec.actions
    );
    assert_eq!(
        images(&deployments.get("payments").await.expect("get")),
        ["registry.local/payments:2"],
        "the Deployment is untouched while waiting"
    );
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), &ns.name)
        .list(&ListParams::default())
        .await
        .expect("events");
    assert_eq!(
        events
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("Escalated"))
            .count(),
        1,
        "one Escalated Event"
    );

    let approve = json!({ "spec": { "approvals": [{ "step": "roll-back", "by": "alice" }] } });
    incidents
        .patch(
            "payments-down",
            &PatchParams::default(),
            &Patch::Merge(&approve),
        )
        .await
        .expect("approve");
    let done = wait_for(
        &incidents,
        "payments-down",
        "the approved rollback ran and was verified",
        WAIT,
        |i| i.is_some_and(|i| step_phase(i, "confirm") == Some(StepPhase::Succeeded)),
    )
    .await
    .expect("Incident");
    let run = done
        .status
        .as_ref()
        .and_then(|s| s.runbook.as_ref())
        .expect("run");
    assert_eq!(run.progress[0].actor.as_deref(), Some("alice"));
    assert_eq!(done.spec.actions.len(), 1);
    assert!(
        entries(&done)
            .iter()
            .any(|(t, m)| *t == EntryType::StepStarted && m.contains("approved by alice")),
        "{:#?}",
        entries(&done)
    );
    assert_eq!(
        images(&deployments.get("payments").await.expect("get")),
        ["registry.local/payments:1"]
    );
    operator.stop().await;
}

#[tokio::test]
async fn an_edited_runbook_never_changes_a_run_and_a_false_when_skips_the_rollback() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "rb-edit").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let runbooks: Api<Runbook> = Api::namespaced(client.clone(), &ns.name);
    let runbook = |steps: Value| {
        json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Runbook",
            "metadata": { "name": "api-runbook" },
            "spec": { "match": { "incidentSelector": { "matchLabels": { "service": "api" } } },
                      "steps": steps },
        })
    };
    let first = apply_runbook(
        &runbooks,
        runbook(json!([
            { "name": "root-cause", "checkpoint": { "prompt": "Root cause identified?" } },
            { "name": "roll-back", "rollback": {}, "approval": "Automatic",
              "when": { "rolledOutWithin": "1s" } },
        ])),
    )
    .await;
    let operator = Operator::start(&ns.name, &[]).await;
    let api = healthy(&deployments, "api", 1).await;
    // The rollout is older than `rolledOutWithin` by the time the incident is opened.
    let rolled_at = api.metadata.creation_timestamp.as_ref().expect("created").0;
    let later = rolled_at + jiff::SignedDuration::from_secs(3);
    if let Ok(wait) = Duration::try_from(later.duration_since(jiff::Timestamp::now())) {
        tokio::time::sleep(wait).await;
    }
    let open = |name: &str| -> Incident {
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": name, "labels": { "service": "api" } },
            "spec": { "title": "API errors", "severity": "P2",
                      "affected": [{ "kind": "Deployment", "name": "api" }] },
        }))
        .expect("Incident")
    };
    incidents
        .create(&PostParams::default(), &open("first"))
        .await
        .expect("create Incident");
    wait_for(
        &incidents,
        "first",
        "waiting at the checkpoint",
        WAIT,
        |i| i.is_some_and(|i| step_phase(i, "root-cause") == Some(StepPhase::WaitingApproval)),
    )
    .await;

    // Edit the runbook in Git mid-run: another step, a new generation.
    let second = apply_runbook(
        &runbooks,
        runbook(json!([
            { "name": "root-cause", "checkpoint": { "prompt": "Root cause identified?" } },
            { "name": "roll-back", "rollback": {}, "approval": "Automatic",
              "when": { "rolledOutWithin": "1s" } },
            { "name": "tell-owner", "escalate": { "message": "API incident", "to": "team-api" } },
        ])),
    )
    .await;
    assert!(second.metadata.generation > first.metadata.generation);

    let done = json!({ "spec": { "approvals": [{ "step": "root-cause", "by": "bob" }] } });
    incidents
        .patch("first", &PatchParams::default(), &Patch::Merge(&done))
        .await
        .expect("mark the checkpoint done");
    let finished = wait_for(&incidents, "first", "the first run finished", WAIT, |i| {
        i.is_some_and(|i| step_phase(i, "roll-back").is_some_and(|p| p.is_terminal()))
    })
    .await
    .expect("Incident");
    let run = finished
        .status
        .as_ref()
        .and_then(|s| s.runbook.as_ref())
        .expect("run");
    assert_eq!(run.generation, first.metadata.generation.unwrap_or(0));
    assert_eq!(
        run.steps.len(),
        2,
        "the run keeps the steps it started with"
    );
    assert_eq!(
        step_phase(&finished, "root-cause"),
        Some(StepPhase::Succeeded)
    );
    assert_eq!(run.progress[0].actor.as_deref(), Some("bob"));
    // The rollback's `when` did not hold: skipped, with the reason, and nothing requested.
    assert_eq!(step_phase(&finished, "roll-back"), Some(StepPhase::Skipped));
    let reason = run.progress[1].reason.clone().unwrap_or_default();
    assert!(reason.contains("not suspected"), "{reason}");
    assert!(finished.spec.actions.is_empty());
    assert!(
        entries(&finished)
            .iter()
            .any(|(t, m)| *t == EntryType::StepSkipped && m.contains("not suspected")),
        "{:#?}",
        entries(&finished)
    );

    // The next incident follows the new generation.
    incidents
        .create(&PostParams::default(), &open("second"))
        .await
        .expect("create Incident");
    let next = wait_for(&incidents, "second", "the second run started", WAIT, |i| {
        i.is_some_and(|i| i.status.as_ref().is_some_and(|s| s.runbook.is_some()))
    })
    .await
    .expect("Incident");
    let run = next
        .status
        .as_ref()
        .and_then(|s| s.runbook.as_ref())
        .expect("run");
    assert_eq!(run.generation, second.metadata.generation.unwrap_or(0));
    assert_eq!(run.steps.len(), 3);
    assert_eq!(next.name_any(), "second");
    operator.stop().await;
}
