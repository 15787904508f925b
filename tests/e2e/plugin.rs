//! The `kubectl incident` plugin, run as a binary against the real API server and operator: the
//! pager queue, acknowledging, notes, severity, show, resolve, the post-mortem draft, approvals,
//! output formats and errors.

use std::{process::Output, time::Duration};

use incident_operator::api::{
    ActionPhase, EntryType, Incident, Phase, Runbook, Severity, StepPhase, TimelineEntry,
};
use k8s_openapi::api::{apps::v1::Deployment, authentication::v1::SelfSubjectReview};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::{
    remediation::{ROLLOUT, create_rolled_out, deployment, images, roll_to, rolled_out},
    runbook_flow::step_phase,
    support::{Operator, TestNamespace, client, install_crds, kubeconfig_path, wait_for},
};

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-incident");
const SETTLE: Duration = Duration::from_secs(60);

/// Runs `kubectl-incident --kubeconfig <e2e> -n <ns> ARGS`, with no other kubeconfig around.
pub async fn plugin(ns: &str, args: &[&str]) -> Output {
    plugin_within(ns, args, Duration::from_secs(60)).await
}

/// Like [`plugin`], for commands that follow something to its end.
pub async fn plugin_within(ns: &str, args: &[&str], limit: Duration) -> Output {
    let kubeconfig = kubeconfig_path();
    let run = Command::new(PLUGIN)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["-n", ns])
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent")
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(limit, run).await {
        Ok(output) => output.expect("run kubectl-incident"),
        Err(_) => panic!("kubectl-incident {args:?} did not finish within {limit:?}"),
    }
}

/// Runs the plugin and expects success; returns stdout.
pub async fn ok(ns: &str, args: &[&str]) -> String {
    let output = plugin(ns, args).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kubectl-incident {args:?} failed ({:?})\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    stdout
}

/// The user the API server authenticates the e2e kubeconfig as: who the plugin must record (the
/// kubeconfig's own name for the user may differ, and admission policies check this one).
pub async fn authenticated_user(client: &Client) -> String {
    Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("SelfSubjectReview")
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .expect("the API server names the user")
}

fn phase(incident: &Incident) -> Option<Phase> {
    incident.status.as_ref().and_then(|s| s.phase)
}

fn entry(incident: &Incident, type_: EntryType) -> Option<&TimelineEntry> {
    incident
        .status
        .as_ref()?
        .timeline
        .iter()
        .find(|e| e.type_ == type_)
}

async fn settle(
    api: &Api<Incident>,
    name: &str,
    what: &str,
    check: impl Fn(&Incident) -> bool,
) -> Incident {
    wait_for(api, name, what, SETTLE, |i| i.is_some_and(&check))
        .await
        .expect("Incident exists")
}

#[tokio::test]
async fn plugin_takes_an_incident_from_the_queue_to_the_postmortem() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "plugin").await;
    let api: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let operator = Operator::start(&ns.name, &[]).await;
    let user = authenticated_user(&client).await;
    let name = "checkout-errors";
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": name },
        "spec": { "title": "Checkout returns 500s", "severity": "P2" },
    }))
    .expect("Incident");
    api.create(&PostParams::default(), &incident)
        .await
        .expect("create Incident");
    settle(&api, name, "Detected", |i| {
        phase(i) == Some(Phase::Detected)
    })
    .await;

    // The queue: the incident, its severity and phase, and time left to respond (P2: about 4h).
    let queue = ok(&ns.name, &["list"]).await;
    let mut lines = queue.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("NAME") && header.contains("RESPOND IN"),
        "{queue}"
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row.first().copied(), Some(name), "{queue}");
    assert_eq!(row.get(1).copied(), Some("P2"), "{queue}");
    assert_eq!(row.get(2).copied(), Some("Detected"), "{queue}");
    assert!(queue.contains("Checkout returns 500s"), "{queue}");
    assert!(
        row.last()
            .is_some_and(|left| left.starts_with("3h5") || *left == "4h"),
        "about 4h left to respond: {queue}"
    );

    // -A: every namespace's queue, the namespace first (other tests' incidents may be listed too).
    let everywhere = ok(&ns.name, &["list", "-A"]).await;
    assert!(
        everywhere.starts_with("NAMESPACE ")
            && everywhere
                .lines()
                .next()
                .is_some_and(|h| h.contains("   NAME   ")),
        "{everywhere}"
    );
    assert!(
        everywhere.lines().any(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            cells.get(..3) == Some(&[ns.name.as_str(), name, "P2"][..])
        }),
        "{everywhere}"
    );

    // Acknowledge: the authenticated user claims it.
    let out = ok(&ns.name, &["ack", name, "--note", "looking at the logs"]).await;
    assert_eq!(
        out.trim(),
        format!("incident.incident.dev/{name} acknowledged")
    );
    let acked = settle(&api, name, "Acknowledged", |i| {
        phase(i) == Some(Phase::Acknowledged)
    })
    .await;
    let managers: Vec<String> = acked
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.iter().any(|m| m == "kubectl-incident"),
        "the plugin writes as its own field manager: {managers:?}"
    );
    let ack = acked.spec.acknowledgment.clone().expect("acknowledgment");
    assert_eq!(ack.by, user);
    assert_eq!(ack.note.as_deref(), Some("looking at the logs"));
    assert_eq!(
        entry(&acked, EntryType::Acknowledged).and_then(|e| e.actor.clone()),
        Some(user.clone())
    );
    assert!(ok(&ns.name, &["list"]).await.contains("acked"));

    // Notes, also written at the same time by several responders: none is lost.
    let out = ok(&ns.name, &["note", name, "payments upstream returns 503"]).await;
    assert_eq!(out.trim(), format!("incident.incident.dev/{name} noted"));
    let concurrent: Vec<String> = (0..4).map(|n| format!("parallel note {n}")).collect();
    let args: Vec<[&str; 3]> = concurrent
        .iter()
        .map(|text| ["note", name, text.as_str()])
        .collect();
    let runs = args.iter().map(|args| plugin(&ns.name, args));
    for output in futures::future::join_all(runs).await {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let noted = settle(&api, name, "every note in the timeline", |i| {
        i.status.as_ref().is_some_and(|s| {
            s.timeline
                .iter()
                .filter(|e| e.type_ == EntryType::Note)
                .count()
                == 5
        })
    })
    .await;
    let texts: Vec<&str> = noted.spec.notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(texts.len(), 5, "{texts:?}");
    assert_eq!(texts[0], "payments upstream returns 503");
    for text in &concurrent {
        assert!(texts.contains(&text.as_str()), "{text} lost: {texts:?}");
    }
    assert!(noted.spec.notes.iter().all(|n| n.author == user));

    // Severity: recorded with the authenticated user as the actor.
    let out = ok(&ns.name, &["severity", name, "P1"]).await;
    assert_eq!(
        out.trim(),
        format!("incident.incident.dev/{name} severity set to P1")
    );
    let raised = settle(&api, name, "SeverityChanged", |i| {
        entry(i, EntryType::SeverityChanged).is_some()
    })
    .await;
    assert_eq!(raised.spec.severity, Severity::P1);
    assert_eq!(
        entry(&raised, EntryType::SeverityChanged).and_then(|e| e.actor.clone()),
        Some(user.clone())
    );

    // Show: the timeline for people.
    let page = ok(&ns.name, &["show", name]).await;
    for expected in [
        format!("Name:         {name}"),
        "Severity:     P1".to_owned(),
        "Phase:        Acknowledged".to_owned(),
        format!("Acknowledged: by {user}: looking at the logs"),
        "Timeline:".to_owned(),
        "Detected".to_owned(),
        format!("(by {user})"),
        "SeverityChanged".to_owned(),
        "Note".to_owned(),
        format!("{user}: payments upstream returns 503"),
    ] {
        assert!(page.contains(&expected), "missing {expected:?} in:\n{page}");
    }
    let timeline = page.split("Timeline:").nth(1).expect("a timeline section");
    let order: Vec<usize> = ["Detected", "Acknowledged", "Note", "SeverityChanged"]
        .iter()
        .map(|t| timeline.find(t).unwrap_or(usize::MAX))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "oldest first:\n{page}"
    );

    // Machine-readable output.
    let shown: Value = serde_json::from_str(&ok(&ns.name, &["show", name, "-o", "json"]).await)
        .expect("show -o json is JSON");
    assert_eq!(shown["metadata"]["name"], name);
    assert_eq!(shown["spec"]["severity"], "P1");
    let listed: Value = serde_json::from_str(&ok(&ns.name, &["list", "-o", "json"]).await)
        .expect("list -o json is JSON");
    assert_eq!(listed["kind"], "List");
    assert_eq!(listed["items"][0]["metadata"]["name"], name);
    let yaml: Value = serde_yaml_ng::from_str(&ok(&ns.name, &["show", name, "-o", "yaml"]).await)
        .expect("show -o yaml is YAML");
    assert_eq!(yaml["spec"]["title"], "Checkout returns 500s");

    // Resolve, then the post-mortem draft.
    let out = ok(
        &ns.name,
        &[
            "resolve",
            name,
            "--root-cause",
            "expired payments certificate",
            "--summary",
            "rotated the certificate",
        ],
    )
    .await;
    assert_eq!(out.trim(), format!("incident.incident.dev/{name} resolved"));
    let resolved = settle(&api, name, "Resolved", |i| {
        phase(i) == Some(Phase::Resolved)
    })
    .await;
    let resolution = resolved.spec.resolution.clone().expect("resolution");
    assert_eq!(resolution.by, user);
    assert_eq!(
        resolution.root_cause.as_deref(),
        Some("expired payments certificate")
    );
    assert!(ok(&ns.name, &["list"]).await.contains("Resolved"));

    let draft = ok(&ns.name, &["postmortem", name]).await;
    assert!(
        draft.starts_with("# Post-mortem: Checkout returns 500s (P1)"),
        "{draft}"
    );
    assert!(draft.contains("rotated the certificate"), "{draft}");
    assert!(draft.contains("expired payments certificate"), "{draft}");

    // The post-mortem done closes it: it leaves the queue, and --all still lists it.
    let done = json!({ "spec": { "postmortem": {
        "url": "https://wiki.example/pm/1", "completed": true } } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&done))
        .await
        .expect("complete the post-mortem");
    settle(&api, name, "Closed", |i| phase(i) == Some(Phase::Closed)).await;
    let output = plugin(&ns.name, &["list"]).await;
    assert!(output.status.success());
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains(name),
        "a closed incident is not in the queue"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "No incidents found in ".to_owned()
            + &ns.name
            + " namespace.\n1 closed incident(s) not shown; --all lists them."
    );
    assert!(ok(&ns.name, &["list", "--all"]).await.contains("Closed"));

    // A missing incident: non-zero exit, the error on stderr, nothing on stdout.
    for args in [
        &["show", "no-such-incident"][..],
        &["ack", "no-such-incident"],
        &["note", "no-such-incident", "hello"],
        &["postmortem", "no-such-incident"],
    ] {
        let output = plugin(&ns.name, args).await;
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr).trim(),
            r#"Error: incident "no-such-incident" not found"#,
            "{args:?}"
        );
    }
    operator.stop().await;
}

#[tokio::test]
async fn plugin_approve_marks_a_runbook_checkpoint_done() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "plugin-approve").await;
    let api: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let runbooks: Api<Runbook> = Api::namespaced(client.clone(), &ns.name);
    let user = authenticated_user(&client).await;
    let runbook = json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Runbook",
        "metadata": { "name": "payments-triage" },
        "spec": {
            "match": { "incidentSelector": { "matchLabels": { "service": "payments" } } },
            "steps": [
                { "name": "root-cause", "checkpoint": { "prompt": "Root cause identified?" } },
                { "name": "tell-owner", "escalate": { "message": "payments incident" } },
            ],
        },
    });
    runbooks
        .patch(
            "payments-triage",
            &PatchParams::apply("e2e-plugin").force(),
            &Patch::Apply(&runbook),
        )
        .await
        .expect("apply Runbook");
    let operator = Operator::start(&ns.name, &[]).await;
    let name = "payments-slow";
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": name, "labels": { "service": "payments" } },
        "spec": { "title": "Payments are slow", "severity": "P3" },
    }))
    .expect("Incident");
    api.create(&PostParams::default(), &incident)
        .await
        .expect("create Incident");
    settle(&api, name, "waiting at the checkpoint", |i| {
        step_phase(i, "root-cause") == Some(StepPhase::WaitingApproval)
    })
    .await;

    let page = ok(&ns.name, &["show", name]).await;
    assert!(
        page.contains("Runbook: payments-triage"),
        "the runbook in show:\n{page}"
    );
    assert!(page.contains("Root cause identified?"), "{page}");
    assert!(
        page.contains(&format!("kubectl incident approve {name} root-cause")),
        "{page}"
    );

    // A step the runbook does not have is refused, and nothing is written.
    let output = plugin(&ns.name, &["approve", name, "no-such-step"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("Error: ") && stderr.contains("no-such-step"),
        "{stderr}"
    );

    let out = ok(&ns.name, &["approve", name, "root-cause"]).await;
    assert_eq!(
        out.trim(),
        format!("incident.incident.dev/{name} step root-cause approved")
    );
    let done = settle(&api, name, "the checkpoint done", |i| {
        step_phase(i, "root-cause") == Some(StepPhase::Succeeded)
    })
    .await;
    let progress = &done
        .status
        .as_ref()
        .and_then(|s| s.runbook.as_ref())
        .expect("runbook run")
        .progress[0];
    assert_eq!(progress.actor.as_deref(), Some(user.as_str()));
    assert_eq!(done.spec.approvals.len(), 1, "{:?}", done.spec.approvals);
    assert_eq!(done.spec.approvals[0].by, user);

    // Approving again changes nothing.
    let out = ok(&ns.name, &["approve", name, "root-cause"]).await;
    assert!(out.contains("already approved"), "{out}");
    operator.stop().await;
}

#[tokio::test]
async fn plugin_rollback_follows_the_operators_rollback_to_the_end() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "plugin-rollback").await;
    let api: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let user = authenticated_user(&client).await;
    let operator = Operator::start(&ns.name, &[]).await;

    let v1 = deployment("web", &["registry.local/web:1"], None);
    create_rolled_out(&deployments, &v1, ROLLOUT).await;
    let v2 = deployment("web", &["registry.local/web:2"], Some("crashloop"));
    roll_to(&deployments, &v2, "deploy v2", false).await;

    // No incident given: one is opened, claimed by the user, and the rollback followed to the end.
    let limit = ROLLOUT + Duration::from_secs(30);
    let output = plugin_within(&ns.name, &["rollback", "web", "--timeout", "120"], limit).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let first = stdout.lines().next().unwrap_or_default();
    let opened = first
        .strip_prefix("incident.incident.dev/")
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the incident named in the first line")
        .to_owned();
    assert!(first.contains("of deployment web requested"), "{stdout}");
    assert!(stdout.trim_end().ends_with("Succeeded"), "{stdout}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("Rollback deployment/web rollback-")),
        "progress lines on stderr: {stderr}"
    );
    let incident = api.get(&opened).await.expect("the opened incident");
    assert_eq!(incident.spec.actions.len(), 1);
    assert_eq!(
        incident.spec.acknowledgment.as_ref().map(|a| a.by.as_str()),
        Some(user.as_str())
    );
    let done = incident
        .status
        .as_ref()
        .and_then(|s| s.actions.first())
        .expect("the action's status");
    assert_eq!(done.phase, ActionPhase::Succeeded, "{done:?}");
    let web = wait_for(&deployments, "web", "back on v1", ROLLOUT, |d| {
        d.is_some_and(|d| rolled_out(d) && images(d) == ["registry.local/web:1"])
    })
    .await
    .expect("Deployment");
    assert_eq!(images(&web), ["registry.local/web:1"]);

    // Another bad deploy, rolled back on the same incident: a second action, the first kept.
    let v3 = deployment("web", &["registry.local/web:3"], Some("crashloop"));
    roll_to(&deployments, &v3, "deploy v3", false).await;
    let out = ok(
        &ns.name,
        &["rollback", "web", "--incident", &opened, "--timeout", "120"],
    )
    .await;
    assert!(out.trim_end().ends_with("Succeeded"), "{out}");
    let incident = api.get(&opened).await.expect("the incident");
    assert_eq!(
        incident.spec.actions.len(),
        2,
        "{:?}",
        incident.spec.actions
    );
    wait_for(&deployments, "web", "back on v1 again", ROLLOUT, |d| {
        d.is_some_and(|d| rolled_out(d) && images(d) == ["registry.local/web:1"])
    })
    .await;
    let page = ok(&ns.name, &["show", &opened]).await;
    assert!(page.contains("Actions:"), "{page}");
    assert!(page.contains("Succeeded"), "{page}");

    // A revision that does not exist: the operator refuses the action, the plugin says why and
    // exits non-zero, and the Deployment is untouched.
    let before = deployments.get("web").await.expect("get Deployment");
    let output = plugin_within(
        &ns.name,
        &[
            "rollback",
            "web",
            "--to-revision",
            "99",
            "--incident",
            &opened,
            "--timeout",
            "60",
        ],
        limit,
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("99"),
        "the reason names the revision: {stderr}"
    );
    let after = deployments.get("web").await.expect("get Deployment");
    assert_eq!(
        after.metadata.generation, before.metadata.generation,
        "the Deployment was not changed"
    );

    // A rollback on a missing incident fails like every other command.
    let output = plugin(&ns.name, &["rollback", "web", "--incident", "missing"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        r#"Error: incident "missing" not found"#
    );
    operator.stop().await;
}
